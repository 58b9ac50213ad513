//! An incremental Server-Sent Events decoder following the WHATWG event-stream rules, as the
//! official OpenAI and Anthropic SDKs implement them (`_streaming.py`, `SSEDecoder`):
//! `\n`, `\r\n` and lone `\r` line ends (a `\r\n` may be split across reads), `:` comments,
//! one leading space stripped from values, multi-line `data` joined with `\n`, bytes buffered
//! across reads (so split UTF-8 characters and JSON survive), and unknown fields ignored except
//! the non-standard `error:` field of older llama.cpp builds, which becomes an `error` event.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::error::Result;

/// Decodes a body of byte chunks into events. An event left unterminated at the end is yielded
/// too; the provider decides whether it is a proper end.
pub fn events<S>(body: S) -> BoxStream<'static, Result<SseEvent>>
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    Box::pin(async_stream::try_stream! {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        futures::pin_mut!(body);
        while let Some(chunk) = body.next().await {
            decoder.feed(&chunk?, &mut events);
            for event in events.drain(..) {
                yield event;
            }
        }
        if let Some(event) = decoder.finish() {
            yield event;
        }
    })
}

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `retry:` field, if any (milliseconds).
    pub retry: Option<u64>,
}

/// Feeds bytes in, gets complete events out.
///
/// ```
/// use oy3o::transport::sse::SseDecoder;
/// let mut d = SseDecoder::default();
/// let mut out = Vec::new();
/// d.feed(b"data: {\"a\":", &mut out);
/// d.feed(b"1}\r\n\r\n: ping\n", &mut out);
/// assert_eq!(out.len(), 1);
/// assert_eq!(out[0].data, "{\"a\":1}");
/// ```
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    skip_lf: bool,
    pending: SseEvent,
    seen_field: bool,
    has_data: bool,
}

impl SseDecoder {
    /// Decodes `bytes`, pushing every event completed by them onto `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut start = 0;
        let mut i = 0;
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                start = 1;
                i = 1;
            }
        }
        while let Some(offset) = memchr::memchr2(b'\n', b'\r', &bytes[i..]) {
            let end = i + offset;
            let is_cr = bytes[end] == b'\r';
            i = end + 1;
            if is_cr {
                if i < bytes.len() {
                    if bytes[i] == b'\n' {
                        i += 1;
                    }
                } else {
                    self.skip_lf = true;
                }
            }
            if self.line.is_empty() {
                // The common case: the whole line is in this read; no copy.
                self.process_line(&bytes[start..end], out);
            } else {
                self.line.extend_from_slice(&bytes[start..end]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
                self.line = line;
                self.line.clear();
            }
            start = i;
        }
        self.line.extend_from_slice(&bytes[start..]);
    }

    /// At end of input: a last line without its line end is processed, and an event without
    /// its closing blank line is returned (lenient, as servers such as llama.cpp end with
    /// `data: [DONE]` and no blank line). The caller decides whether it counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let mut out = Vec::new();
            self.process_line(&line, &mut out);
            if let Some(e) = out.pop() {
                return Some(e);
            }
        }
        if self.seen_field {
            return self.take_event();
        }
        None
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        let mut event = std::mem::take(&mut self.pending);
        self.seen_field = false;
        self.has_data = false;
        if event.data.ends_with('\n') {
            event.data.pop();
        }
        Some(event)
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.seen_field
                && let Some(e) = self.take_event()
            {
                out.push(e);
            }
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        // Valid UTF-8 is the norm: check it fast, repair only when needed.
        let value = match std::str::from_utf8(value) {
            Ok(v) => std::borrow::Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(value),
        };
        match name {
            b"data" => {
                // One allocation for the value and its '\n' (pushing them in turn made every
                // event's data grow twice).
                self.pending.data.reserve(value.len() + 1);
                self.pending.data.push_str(&value);
                self.pending.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.pending.event = Some(value.into_owned()),
            b"id" => {
                if !value.contains('\0') {
                    self.pending.id = Some(value.into_owned());
                }
            }
            b"retry" => match value.parse() {
                Ok(ms) => self.pending.retry = Some(ms),
                Err(_) => return,
            },
            b"error" => {
                // Old llama.cpp builds: `error: {json}` instead of a data line.
                self.pending.event = Some("error".into());
                self.pending.data.push_str(&value);
                self.pending.data.push('\n');
            }
            _ => return,
        }
        self.seen_field = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<SseEvent>) {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
        }
        let tail = d.finish();
        (out, tail)
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn lf_crlf_and_lone_cr_line_ends_all_dispatch() {
        for stream in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"data: a\r\n\r\ndata: b\r\n\r\n",
            b"data: a\r\rdata: b\r\r",
        ] {
            let (events, tail) = decode_all(&[stream]);
            assert_eq!(data(&events), ["a", "b"], "{stream:?}");
            assert_eq!(tail, None);
        }
    }

    #[test]
    fn crlf_split_across_reads_does_not_make_an_extra_blank_line() {
        let (events, _) = decode_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(data(&events), ["a\nb"]);
    }

    #[test]
    fn comments_are_ignored_and_do_not_dispatch() {
        let (events, _) = decode_all(&[b": keep-alive\n\n: OPENROUTER PROCESSING\n\ndata: x\n\n"]);
        assert_eq!(data(&events), ["x"]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let (events, _) = decode_all(&[b"data: {\ndata: \"a\": 1\ndata:}\n\n"]);
        assert_eq!(data(&events), ["{\n\"a\": 1\n}"]);
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        let (events, _) = decode_all(&[b"data:  two\ndata:none\n\n"]);
        assert_eq!(data(&events), [" two\nnone"]);
    }

    #[test]
    fn event_id_and_retry_fields_are_kept_and_unknown_fields_ignored() {
        let (events, _) =
            decode_all(&[b"event: message_stop\nid: 7\nretry: 300\nfoo: bar\ndata: {}\n\n"]);
        assert_eq!(events[0].event.as_deref(), Some("message_stop"));
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[0].retry, Some(300));
    }

    #[test]
    fn an_event_with_only_an_event_field_still_dispatches() {
        let (events, _) = decode_all(&[b"event: ping\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "");
    }

    #[test]
    fn utf8_split_inside_a_character_survives() {
        let text = "data: héllo 世界\n\n".as_bytes();
        let (events, _) = decode_all(&[&text[..8], &text[8..14], &text[14..]]);
        assert_eq!(data(&events), ["héllo 世界"]);
    }

    #[test]
    fn eof_without_blank_line_yields_the_unterminated_event_to_the_caller() {
        let (events, tail) = decode_all(&[b"data: a\n\ndata: [DONE]"]);
        assert_eq!(data(&events), ["a"]);
        assert_eq!(tail.map(|e| e.data), Some("[DONE]".to_owned()));
    }

    #[test]
    fn old_llama_cpp_error_field_becomes_an_error_event() {
        let (events, _) = decode_all(&[b"error: {\"code\":400}\n\ndata: [DONE]\n\n"]);
        assert_eq!(events[0].event.as_deref(), Some("error"));
        assert_eq!(events[0].data, "{\"code\":400}");
    }

    proptest::proptest! {
        #[test]
        fn random_splits_decode_to_the_same_events(cuts in proptest::collection::vec(0usize..400, 0..12)) {
            let stream = "data: {\"a\":\"é世\"}\r\n\r\n: keep-alive\r\n\r\nevent: x\ndata: 1\ndata: 2\n\ndata: [DONE]\r\n\r\n".as_bytes();
            let (whole, _) = decode_all(&[stream]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts {
                pieces.push(&stream[last..c]);
                last = c;
            }
            pieces.push(&stream[last..]);
            let (split, tail) = decode_all(&pieces);
            proptest::prop_assert_eq!(split, whole);
            proptest::prop_assert_eq!(tail, None);
        }
    }
}
