//! A small streaming markdown renderer for the terminal: headings, list bullets, quotes,
//! `**bold**`, `` `code` `` and fenced code blocks, written as ANSI styles as the text arrives.
//! A fenced block that names a known language gets syntax colours ([`Highlighter`]), line by
//! line; other blocks stream character by character in one colour.
//!
//! It is not a full CommonMark renderer: it styles what answers use most and passes everything
//! else through unchanged, so nothing the model wrote is ever lost.

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const HEADING: &str = "\x1b[1;36m";
const CODE: &str = "\x1b[33m";
const BLOCK: &str = "\x1b[32m";
const DIM: &str = "\x1b[2m";

use crate::highlight::Highlighter;

/// Turns markdown text, fed in chunks of any size, into styled terminal text.
///
/// ```ignore
/// let mut r = Renderer::default();
/// let mut out = r.push("# Title\nsome **bold**");
/// out += &r.finish();
/// ```
#[derive(Debug, Default)]
pub struct Renderer {
    /// Text at the start of a line, held until its kind (heading, bullet, fence) is known.
    line_start: String,
    /// Whether the current line's prefix has been decided.
    decided: bool,
    /// Inside a fenced code block.
    in_block: bool,
    /// The current line is a heading (styled to its end).
    heading: bool,
    /// The current line is a fence line (```lang).
    fence: bool,
    bold: bool,
    code: bool,
    /// A `*` seen, waiting for the next character to tell `**` from a lone star.
    star: bool,
    /// The opening fence line so far (its language comes after the backticks).
    fence_info: String,
    /// The colours of the current block, when its language is known.
    highlighter: Option<Highlighter>,
    /// The current line of a coloured block, held until it ends (colours need the whole line).
    code_line: String,
}

impl Renderer {
    /// Renders a chunk; returns what can be written now.
    pub fn push(&mut self, text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            self.push_char(c, &mut out);
        }
        out
    }

    /// Flushes what is held back and resets every style.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if !self.decided && !self.line_start.is_empty() {
            self.decide(&mut out);
        }
        if self.star {
            self.star = false;
            out.push('*');
        }
        self.flush_code_line(&mut out);
        if self.bold || self.code || self.heading || self.in_block || self.fence {
            out.push_str(RESET);
        }
        *self = Self::default();
        out
    }

    fn push_char(&mut self, c: char, out: &mut String) {
        if !self.decided {
            if c == '\n' {
                self.decide(out);
                self.end_line(out);
                return;
            }
            self.line_start.push(c);
            if !may_be_prefix(&self.line_start) {
                self.decide(out);
            }
            return;
        }
        if c == '\n' {
            self.end_line(out);
            return;
        }
        self.inline(c, out);
    }

    /// Decides what kind of line this is from its start, writes the styled prefix and then
    /// renders the rest of the held text inline.
    fn decide(&mut self, out: &mut String) {
        self.decided = true;
        let held = std::mem::take(&mut self.line_start);
        let trimmed = held.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            self.fence = true;
            self.in_block = !self.in_block;
            if self.in_block {
                self.fence_info = trimmed.to_owned();
                if names_language(&self.fence_info) {
                    crate::highlight::preload();
                }
            } else {
                self.highlighter = None;
            }
            out.push_str(DIM);
            out.push_str(&held);
            return;
        }
        if self.in_block {
            if self.highlighter.is_some() {
                self.code_line.push_str(&held);
            } else {
                out.push_str(BLOCK);
                out.push_str(&held);
            }
            return;
        }
        let indent = &held[..held.len() - trimmed.len()];
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
            self.heading = true;
            out.push_str(HEADING);
            out.push_str(&held);
            return;
        }
        for marker in ["- ", "* ", "+ "] {
            if let Some(rest) = trimmed.strip_prefix(marker) {
                out.push_str(indent);
                out.push_str("• ");
                self.inline_str(rest, out);
                return;
            }
        }
        if let Some(rest) = trimmed.strip_prefix("> ") {
            out.push_str(indent);
            out.push_str(DIM);
            out.push_str("│ ");
            out.push_str(RESET);
            self.inline_str(rest, out);
            return;
        }
        self.inline_str(&held, out);
    }

    fn inline_str(&mut self, text: &str, out: &mut String) {
        for c in text.chars() {
            self.inline(c, out);
        }
    }

    fn inline(&mut self, c: char, out: &mut String) {
        if self.in_block || self.fence {
            if self.fence && self.in_block {
                let named = names_language(&self.fence_info);
                self.fence_info.push(c);
                if !named && names_language(&self.fence_info) {
                    // The fence names a language: have the colours ready for its first line.
                    crate::highlight::preload();
                }
            } else if self.in_block && self.highlighter.is_some() {
                self.code_line.push(c);
                return;
            }
            out.push(c);
            return;
        }
        if self.star {
            self.star = false;
            if c == '*' && !self.code {
                self.bold = !self.bold;
                if self.bold {
                    out.push_str(BOLD);
                } else {
                    out.push_str(RESET);
                    self.restyle(out);
                }
                return;
            }
            out.push('*');
        }
        match c {
            '*' if !self.code => self.star = true,
            '`' => {
                self.code = !self.code;
                out.push_str(if self.code { CODE } else { RESET });
                if !self.code {
                    self.restyle(out);
                }
            }
            _ => out.push(c),
        }
    }

    /// Restores the styles still open after a reset.
    fn restyle(&self, out: &mut String) {
        if self.heading {
            out.push_str(HEADING);
        }
        if self.bold {
            out.push_str(BOLD);
        }
    }

    /// Writes the held line of a coloured block, coloured.
    fn flush_code_line(&mut self, out: &mut String) {
        if let Some(h) = &mut self.highlighter
            && !self.code_line.is_empty()
        {
            out.push_str(&h.line(&std::mem::take(&mut self.code_line)));
        }
    }

    fn end_line(&mut self, out: &mut String) {
        if self.star {
            self.star = false;
            out.push('*');
        }
        if self.fence && self.in_block {
            // The opening fence is complete: its first word after the fence is the language.
            let info = std::mem::take(&mut self.fence_info);
            let language = info
                .trim_start_matches(['`', '~'])
                .split_whitespace()
                .next();
            self.highlighter = language.and_then(Highlighter::for_language);
        } else if self.in_block {
            self.flush_code_line(out);
        }
        let styled = self.heading || self.fence || self.in_block || self.bold || self.code;
        if styled {
            out.push_str(RESET);
        }
        // Inline styles do not cross lines: a model's unclosed `**` must not bold the rest.
        self.heading = false;
        self.fence = false;
        self.bold = false;
        self.code = false;
        self.decided = false;
        out.push('\n');
    }
}

/// Whether an opening fence line (so far) names a language after its backticks or tildes.
fn names_language(fence: &str) -> bool {
    fence
        .trim_start_matches(['`', '~'])
        .chars()
        .any(char::is_alphanumeric)
}

/// Whether `start` could still grow into a line prefix this renderer styles.
fn may_be_prefix(start: &str) -> bool {
    let t = start.trim_start();
    if t.is_empty() {
        return start.len() < 8;
    }
    let is = |p: &str| p.starts_with(t) || t.starts_with(p) && t.len() <= p.len();
    if t.chars().all(|c| c == '#') {
        return t.len() <= 6;
    }
    is("```") || is("~~~") || is("- ") || is("* ") || is("+ ") || is("> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_in_pieces(text: &str, size: usize) -> String {
        let mut r = Renderer::default();
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::new();
        for piece in chars.chunks(size) {
            out += &r.push(&piece.iter().collect::<String>());
        }
        out + &r.finish()
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn headings_bold_and_code_get_styles_and_keep_their_text() {
        let out = render_in_pieces("# Title\nsome **bold** and `code`\n", 100);
        assert!(out.starts_with(HEADING), "{out:?}");
        assert!(out.contains(&format!("{BOLD}bold{RESET}")), "{out:?}");
        assert!(out.contains(&format!("{CODE}code{RESET}")), "{out:?}");
        assert_eq!(strip_ansi(&out), "# Title\nsome bold and code\n");
    }

    #[test]
    fn the_result_does_not_depend_on_how_the_text_is_split() {
        let text = "## H\n- one **two**\n* three\n```rust\nlet x = 1 * 2;\n```\n> quote\nend";
        let whole = render_in_pieces(text, 1000);
        for size in [1, 2, 3, 7] {
            assert_eq!(render_in_pieces(text, size), whole, "size {size}");
        }
        assert_eq!(
            strip_ansi(&whole),
            "## H\n• one two\n• three\n```rust\nlet x = 1 * 2;\n```\n│ quote\nend"
        );
    }

    #[test]
    fn a_rust_block_gets_syntax_colours_whatever_the_split() {
        let text = "say\n```rust\nfn main() {\n    let s = \"hi\";\n}\n```\nafter **b**\n";
        let whole = render_in_pieces(text, 1000);
        assert!(whole.contains("\x1b[38;"), "{whole:?}");
        assert!(
            !whole.contains(BLOCK),
            "one colour is for unknown languages: {whole:?}"
        );
        assert_eq!(strip_ansi(&whole), text.replace("**", ""));
        for size in [1, 3, 5] {
            assert_eq!(render_in_pieces(text, size), whole, "size {size}");
        }
        // The colours end with the block.
        let after = whole.split("after").nth(1).unwrap();
        assert!(!after.contains("\x1b[38;"), "{after:?}");
        // A block still open at the end of the answer is written out too.
        let open = render_in_pieces("```rust\nlet x = 1;", 2);
        assert_eq!(strip_ansi(&open), "```rust\nlet x = 1;");
        assert!(open.contains("\x1b[38;"), "{open:?}");
    }

    #[test]
    fn a_block_without_a_known_language_streams_in_one_colour() {
        for fence in ["```", "```no-such-language"] {
            let out = render_in_pieces(&format!("{fence}\nlet x = 1;\n```\n"), 3);
            assert!(out.contains(&format!("{BLOCK}let x = 1;")), "{out:?}");
            assert!(!out.contains("\x1b[38;"), "{out:?}");
        }
    }

    #[test]
    fn code_blocks_are_left_verbatim() {
        let out = render_in_pieces("```\n**not bold** `x`\n```\n", 4);
        assert_eq!(strip_ansi(&out), "```\n**not bold** `x`\n```\n");
        assert!(!out.contains(BOLD));
    }

    #[test]
    fn a_lone_star_and_an_unclosed_bold_are_kept() {
        assert_eq!(strip_ansi(&render_in_pieces("2 * 3 = 6", 1)), "2 * 3 = 6");
        let out = render_in_pieces("**open\nnext", 1);
        assert_eq!(strip_ansi(&out), "open\nnext");
        assert!(
            out.ends_with("next"),
            "bold must not leak into the next line: {out:?}"
        );
    }
}
