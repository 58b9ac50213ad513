//! Syntax colours for fenced code blocks, by syntect with its default syntaxes and themes.
//!
//! The syntaxes and the theme are loaded on first use (when an answer opens a fenced block that
//! names a language), so start-up and answers without code pay nothing for them.

use std::sync::OnceLock;

use syntect::easy::HighlightLines;
use syntect::highlighting::{Color, Theme, ThemeSet};
use syntect::parsing::SyntaxSet;

/// A theme from syntect's defaults that reads well on dark and light terminals alike.
const THEME: &str = "base16-ocean.dark";
const RESET: &str = "\x1b[0m";

struct Assets {
    syntaxes: SyntaxSet,
    theme: Theme,
}

fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let mut themes = ThemeSet::load_defaults();
        Assets {
            syntaxes: SyntaxSet::load_defaults_newlines(),
            theme: themes.themes.remove(THEME).unwrap_or_default(),
        }
    })
}

/// Starts loading the syntaxes and the theme on a background thread (once), so that they are
/// ready by the time the first line of a block is complete: call it as soon as a fence names a
/// language. Loading takes ~30 ms, about a token or two of a fast model.
pub fn preload() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        // If the thread cannot start, the first line loads them instead.
        let _ = std::thread::Builder::new()
            .name("oy3o-syntaxes".into())
            .spawn(|| {
                assets();
            });
    });
}

/// Colours one code block line by line, keeping the parser's state from line to line.
///
/// ```ignore
/// let mut h = Highlighter::for_language("rust").expect("rust is a default syntax");
/// let styled = h.line("let x = 1;");
/// ```
pub struct Highlighter {
    lines: HighlightLines<'static>,
    truecolor: bool,
}

impl std::fmt::Debug for Highlighter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Highlighter").finish_non_exhaustive()
    }
}

impl Highlighter {
    /// A highlighter for a fence's language (`rust`, `rs`, `python`, `py`, ...); `None` for an
    /// empty or unknown one.
    pub fn for_language(language: &str) -> Option<Self> {
        let language = language.trim();
        if language.is_empty() {
            return None;
        }
        let assets = assets();
        let syntax = assets.syntaxes.find_syntax_by_token(language)?;
        Some(Self {
            lines: HighlightLines::new(syntax, &assets.theme),
            truecolor: truecolor(),
        })
    }

    /// `line` (without its newline) with a colour per token, ending with a reset.
    pub fn line(&mut self, line: &str) -> String {
        let with_newline = format!("{line}\n");
        let Ok(ranges) = self.lines.highlight_line(&with_newline, &assets().syntaxes) else {
            // A grammar the regex engine cannot run: the text matters more than its colour.
            return line.to_owned();
        };
        let mut out = String::with_capacity(line.len() * 3);
        for (style, text) in ranges {
            let text = text.strip_suffix('\n').unwrap_or(text);
            if !text.is_empty() {
                push_colour(&mut out, style.foreground, self.truecolor);
                out.push_str(text);
            }
        }
        out.push_str(RESET);
        out
    }
}

/// Whether the terminal says it shows 24-bit colour (the `COLORTERM` convention).
fn truecolor() -> bool {
    std::env::var("COLORTERM").is_ok_and(|v| v == "truecolor" || v == "24bit")
}

/// A foreground colour: 24-bit when the terminal has it, else the nearest of the 256-colour
/// cube, which every modern terminal has.
fn push_colour(out: &mut String, c: Color, truecolor: bool) {
    use std::fmt::Write;
    if truecolor {
        let _ = write!(out, "\x1b[38;2;{};{};{}m", c.r, c.g, c.b);
    } else {
        let level = |v: u8| (u16::from(v) * 5 + 127) / 255;
        let index = 16 + 36 * level(c.r) + 6 * level(c.g) + level(c.b);
        let _ = write!(out, "\x1b[38;5;{index}m");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_line_gets_colours_and_keeps_its_text() {
        let mut h = Highlighter::for_language("rust").expect("rust is a default syntax");
        let out = h.line("let x = \"s\";");
        assert!(out.contains("\x1b[38;"), "{out:?}");
        assert!(out.ends_with(RESET));
        let colours = out.matches("\x1b[38;").count();
        assert!(colours >= 3, "keyword, name, string differ: {out:?}");
        assert!(Highlighter::for_language("rs").is_some());
        assert!(Highlighter::for_language("no-such-language").is_none());
        assert!(Highlighter::for_language(" ").is_none());
    }

    #[test]
    fn the_256_colour_form_picks_the_nearest_cube_colour() {
        let mut out = String::new();
        push_colour(
            &mut out,
            Color {
                r: 255,
                g: 0,
                b: 0,
                a: 255,
            },
            false,
        );
        assert_eq!(out, "\x1b[38;5;196m");
        out.clear();
        push_colour(
            &mut out,
            Color {
                r: 1,
                g: 2,
                b: 3,
                a: 255,
            },
            true,
        );
        assert_eq!(out, "\x1b[38;2;1;2;3m");
    }
}
