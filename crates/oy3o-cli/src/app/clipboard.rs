//! The clipboard: the system one (arboard) when there is a display, and OSC 52 for every copy,
//! so that copying works over SSH and inside tmux too.

use std::io::Write;

/// The system clipboard, opened on first use (start-up stays fast, and a machine with no
/// display fails at once rather than at every key).
#[derive(Default)]
pub struct Clipboard {
    system: Option<arboard::Clipboard>,
    tried: bool,
}

impl Clipboard {
    fn system(&mut self) -> Option<&mut arboard::Clipboard> {
        if !self.tried {
            self.tried = true;
            self.system = arboard::Clipboard::new().ok();
        }
        // Kept open: on X11 the copied text lives only as long as its owner.
        self.system.as_mut()
    }

    /// Puts `text` on the system clipboard when there is one, and asks the terminal to (OSC 52).
    pub fn copy(&mut self, text: &str) {
        if let Some(system) = self.system() {
            let _ = system.set_text(text.to_owned());
        }
        let mut out = std::io::stdout();
        let _ = crossterm::execute!(
            out,
            crossterm::clipboard::CopyToClipboard::to_clipboard_from(text)
        );
        let _ = out.flush();
    }

    /// The system clipboard's text, when there is a system clipboard with text on it.
    pub fn paste(&mut self) -> Option<String> {
        self.system()?.get_text().ok()
    }
}
