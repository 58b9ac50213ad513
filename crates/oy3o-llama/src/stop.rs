//! Stop sequences ([`crate::GenerateOptions::stop`]): the answer ends as soon as its text
//! contains one of them, and the stop text itself is never handed out. While streaming, a tail
//! that could still grow into a stop sequence is held back, and released once it can no longer
//! match (or when the answer ends for another reason).

/// What is certain after some more answer text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Released {
    /// Text that is part of the answer.
    pub(crate) text: String,
    /// A stop sequence was found: the answer ends after `text`.
    pub(crate) stopped: bool,
}

/// A streaming matcher of stop sequences.
#[derive(Debug, Default)]
pub(crate) struct StopMatcher {
    /// The sequences, empty ones left out (an empty sequence would stop every answer at once).
    stops: Vec<String>,
    /// Text not handed out yet: an end of the answer that is the start of a sequence.
    pending: String,
    stopped: bool,
}

impl StopMatcher {
    /// A matcher of `stops`; with none, every piece of text passes at once.
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
            stopped: false,
        }
    }

    /// Feeds more answer text; returns what is certain now. After a stop, nothing more passes.
    pub(crate) fn push(&mut self, text: &str) -> Released {
        if self.stopped {
            return Released {
                text: String::new(),
                stopped: true,
            };
        }
        if self.stops.is_empty() {
            return Released {
                text: text.to_owned(),
                stopped: false,
            };
        }
        self.pending.push_str(text);
        // The earliest place any sequence starts: the answer ends there.
        if let Some(start) = self.stops.iter().filter_map(|s| self.pending.find(s)).min() {
            self.pending.truncate(start);
            self.stopped = true;
            return Released {
                text: std::mem::take(&mut self.pending),
                stopped: true,
            };
        }
        let keep = self
            .stops
            .iter()
            .map(|s| partial_suffix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - keep;
        Released {
            text: self.pending.drain(..cut).collect(),
            stopped: false,
        }
    }

    /// The answer ended: `tail` is its last text; what was held back is answer text after all
    /// (unless `tail` completes a sequence).
    pub(crate) fn finish(&mut self, tail: &str) -> Released {
        let mut released = self.push(tail);
        if !released.stopped {
            released.text.push_str(&std::mem::take(&mut self.pending));
        }
        released
    }
}

/// The length of the longest end of `text` that is a proper start of `sequence`.
fn partial_suffix(text: &str, sequence: &str) -> usize {
    (1..sequence.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && sequence.is_char_boundary(n)
                && text.ends_with(&sequence[..n])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(list: &[&str]) -> StopMatcher {
        StopMatcher::new(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    /// Feeds `pieces` one by one; the text handed out after each, and whether it stopped.
    fn run(m: &mut StopMatcher, pieces: &[&str]) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        for piece in pieces {
            let r = m.push(piece);
            out.push(r.text);
            if r.stopped {
                return (out, true);
            }
        }
        let r = m.finish("");
        out.push(r.text);
        (out, r.stopped)
    }

    #[test]
    fn a_sequence_split_across_tokens_stops_the_answer_and_is_never_handed_out() {
        let mut m = stops(&["END"]);
        let (out, stopped) = run(&mut m, &["The answer", " is 4.", " E", "N", "D and more"]);
        assert!(stopped);
        assert_eq!(out, ["The answer", " is 4.", " ", "", ""]);
        assert_eq!(out.concat(), "The answer is 4. ");
        assert!(!out.concat().contains('E'));
    }

    #[test]
    fn a_partial_match_that_diverges_is_released() {
        let mut m = stops(&["###"]);
        assert_eq!(m.push("a #").text, "a ");
        assert_eq!(m.push("#").text, "", "## could still become ###");
        let r = m.push("x");
        assert_eq!((r.text.as_str(), r.stopped), ("##x", false));
        // Held back at the very end: released by finish.
        assert_eq!(m.push(" ##").text, " ");
        let end = m.finish("");
        assert_eq!((end.text.as_str(), end.stopped), ("##", false));
    }

    #[test]
    fn the_earliest_of_several_sequences_wins_and_each_holds_its_own_prefix() {
        let mut m = stops(&["\n\nUser:", "STOP"]);
        assert_eq!(m.push("one\n").text, "one", "\\n may start \\n\\nUser:");
        assert_eq!(m.push("\nUs").text, "");
        let r = m.push("ual ST");
        assert_eq!((r.text.as_str(), r.stopped), ("\n\nUsual ", false));
        let r = m.push("OP\n\nUser: hi");
        assert_eq!((r.text.as_str(), r.stopped), ("", true));

        // "b" completes first while streaming: the answer ends there.
        let mut m = stops(&["b", "abc"]);
        assert_eq!(m.push("xxa").text, "xx", "a may start abc");
        let r = m.push("b");
        assert_eq!((r.text.as_str(), r.stopped), ("a", true));
        // Both complete in one piece: the one that starts first wins.
        let mut m = stops(&["b", "abc"]);
        let r = m.push("xxabc");
        assert_eq!((r.text.as_str(), r.stopped), ("xx", true));
        assert!(m.push("more").stopped);
        assert_eq!(m.push("more").text, "");
    }

    #[test]
    fn no_sequences_pass_every_piece_at_once() {
        let mut m = stops(&[]);
        assert_eq!(m.push("a").text, "a");
        assert_eq!(m.push("").text, "");
        assert_eq!(m.push("b\n\n").text, "b\n\n");
        assert!(!m.finish("").stopped);
        // Empty sequences are left out rather than stopping everything.
        let mut m = stops(&[""]);
        assert_eq!(m.push("text").text, "text");
    }

    #[test]
    fn a_sequence_completed_by_the_last_text_still_stops() {
        let mut m = stops(&["</s>"]);
        assert_eq!(m.push("ok </").text, "ok ");
        let end = m.finish("s>");
        assert_eq!((end.text.as_str(), end.stopped), ("", true));
    }

    #[test]
    fn multibyte_text_is_cut_at_character_boundaries() {
        let mut m = stops(&["é!"]);
        assert_eq!(m.push("café").text, "caf");
        let r = m.push("s");
        assert_eq!((r.text.as_str(), r.stopped), ("és", false));
        let r = m.push(" é!");
        assert_eq!((r.text.as_str(), r.stopped), (" ", true));
    }
}
