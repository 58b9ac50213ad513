//! Turns token bytes into text: a token can end in the middle of a multi-byte character, so bytes
//! are held back until the character is complete. Also tells where a sentence ends, for answers
//! that should end at one.

/// Collects token bytes and hands out only whole UTF-8 characters.
#[derive(Debug, Default)]
pub(crate) struct Utf8Pieces {
    pending: Vec<u8>,
}

impl Utf8Pieces {
    /// Adds the bytes of one token; returns the text that is complete now (maybe empty).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe: the first `valid` bytes were just checked.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never be UTF-8: show a replacement and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end of the answer (an unfinished character becomes U+FFFD).
    pub(crate) fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// True when a token whose text is `next` starts a new sentence or paragraph after `answer` (the
/// answer so far): between them is a space or line break after a sentence's closing `.`, `!` or
/// `?` (and any closing quotes, brackets or `*`), or a blank line after anything but a colon
/// (which announces what follows). Never inside a fenced code block. So "3.14", "e.g.," and the
/// items of a list go on; "Paris. It" ends before " It".
pub(crate) fn starts_new_sentence(answer: &[u8], next: &[u8]) -> bool {
    let lead = next.len() - next.trim_ascii_start().len();
    let mut joined = answer.to_vec();
    joined.extend_from_slice(&next[..lead]);
    let content = joined.trim_ascii_end();
    let gap = &joined[content.len()..];
    if content.is_empty() || gap.is_empty() || inside_code_block(content) {
        return false;
    }
    let blank_line = gap.iter().filter(|&&b| b == b'\n').count() >= 2;
    if blank_line && !content.ends_with(b":") {
        return true;
    }
    let unclosed = content
        .iter()
        .rposition(|b| !matches!(b, b'"' | b'\'' | b')' | b']' | b'*'))
        .map_or(&[][..], |i| &content[..=i]);
    matches!(unclosed.last(), Some(b'.' | b'!' | b'?'))
}

/// True when `text` has opened a Markdown code fence (```) and not closed it.
fn inside_code_block(text: &[u8]) -> bool {
    text.windows(3).filter(|w| w == b"```").count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_space_or_line_break_after_a_full_stop_question_or_exclamation_mark_starts_a_sentence() {
        assert!(starts_new_sentence(b"is Paris.", b" It"));
        assert!(starts_new_sentence(b"really?", b" Yes"));
        assert!(starts_new_sentence(b"said \"go!\"", b" Then"));
        assert!(starts_new_sentence(b"(see above.)", b" Next"));
        assert!(starts_new_sentence(b"**Paris.**", b" It"));
        assert!(starts_new_sentence(b"is Paris.", b"\n"));
        // The space or line break can end the token before instead of starting this one.
        assert!(starts_new_sentence(b"is Paris.\n\n", b"It"));
        assert!(starts_new_sentence(b"is Paris. ", b"It"));
    }

    #[test]
    fn a_blank_line_starts_a_paragraph_unless_a_colon_announces_what_follows() {
        assert!(starts_new_sentence(b"- bread\n- milk", b"\n\n"));
        assert!(starts_new_sentence(b"- bread\n- milk\n", b"\n"));
        assert!(!starts_new_sentence(b"Three reasons:", b"\n\n"));
        assert!(!starts_new_sentence(b"Three reasons: ", b"\n\n"));
    }

    #[test]
    fn the_middle_of_a_sentence_number_or_list_is_not_an_end() {
        assert!(!starts_new_sentence(b"about 3.", b"14"));
        assert!(!starts_new_sentence(b"for example", b" the"));
        assert!(!starts_new_sentence(b"e.g.", b","));
        assert!(!starts_new_sentence(b"- bread", b"\n"));
        assert!(!starts_new_sentence(b"", b"\n\n"));
        assert!(!starts_new_sentence(b"Paris.", b""));
    }

    #[test]
    fn nothing_inside_a_code_block_ends_a_sentence() {
        assert!(!starts_new_sentence(b"Like this:\n```\nx = 1.", b"\n\n"));
        assert!(!starts_new_sentence(b"```py\nprint('hi.')", b" #"));
        assert!(starts_new_sentence(
            b"```\nx = 1\n```\nThat is all.",
            b" It"
        ));
    }

    #[test]
    fn a_character_split_across_tokens_comes_out_whole() {
        let mut d = Utf8Pieces::default();
        let bytes = "a€b".as_bytes(); // € is 3 bytes
        assert_eq!(d.push(&bytes[..2]), "a");
        assert_eq!(d.push(&bytes[2..3]), "");
        assert_eq!(d.push(&bytes[3..]), "€b");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut d = Utf8Pieces::default();
        assert_eq!(d.push(b"x\xffy"), "x\u{fffd}y");
    }

    #[test]
    fn an_unfinished_character_at_the_end_is_flushed_as_a_replacement() {
        let mut d = Utf8Pieces::default();
        assert_eq!(d.push(&"é".as_bytes()[..1]), "");
        assert_eq!(d.finish(), "\u{fffd}");
    }
}
