//! The text editor under the input line and the `edit NUM` screen: a cursor over characters,
//! line and word moves, and undo. It knows nothing about keys; [`super::events`] maps them.

/// Editable text with a cursor (a character index) and an undo stack.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Editor {
    chars: Vec<char>,
    cursor: usize,
    undo: Vec<(Vec<char>, usize)>,
    /// The last change was typing, so the next typed character joins the same undo step.
    typing: bool,
}

impl Editor {
    /// An editor holding `text`, the cursor at its end.
    pub fn with_text(text: &str) -> Self {
        let chars: Vec<char> = text.chars().collect();
        Self {
            cursor: chars.len(),
            chars,
            ..Self::default()
        }
    }

    /// The text.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// The cursor as (line, column), both from 0, columns counted in characters.
    pub fn cursor_line_col(&self) -> (usize, usize) {
        let before = &self.chars[..self.cursor];
        let line = before.iter().filter(|&&c| c == '\n').count();
        let col = before.iter().rev().take_while(|&&c| c != '\n').count();
        (line, col)
    }

    /// Whether there is no text.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    fn snapshot(&mut self, typing: bool) {
        if !(typing && self.typing) {
            self.undo.push((self.chars.clone(), self.cursor));
            // Bound the memory a long session can take.
            if self.undo.len() > 200 {
                self.undo.remove(0);
            }
        }
        self.typing = typing;
    }

    /// Types one character at the cursor.
    pub fn insert(&mut self, c: char) {
        self.snapshot(c != '\n');
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }

    /// Inserts text (a paste) at the cursor, as one undo step.
    pub fn insert_str(&mut self, text: &str) {
        self.snapshot(false);
        let new: Vec<char> = text.chars().filter(|&c| c != '\r').collect();
        let n = new.len();
        self.chars.splice(self.cursor..self.cursor, new);
        self.cursor += n;
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.snapshot(false);
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.snapshot(false);
            self.chars.remove(self.cursor);
        }
    }

    /// Clears everything (Ctrl+X); undo brings it back.
    pub fn clear(&mut self) {
        if !self.chars.is_empty() {
            self.snapshot(false);
            self.chars.clear();
            self.cursor = 0;
        }
    }

    /// Replaces the text (a history entry), as one undo step.
    pub fn set_text(&mut self, text: &str) {
        self.snapshot(false);
        self.chars = text.chars().collect();
        self.cursor = self.chars.len();
    }

    /// Goes back one change (Ctrl+Z). Returns false when there is nothing to undo.
    pub fn undo(&mut self) -> bool {
        self.typing = false;
        match self.undo.pop() {
            Some((chars, cursor)) => {
                self.chars = chars;
                self.cursor = cursor.min(self.chars.len());
                true
            }
            None => false,
        }
    }

    /// Moves one character left.
    pub fn left(&mut self) {
        self.typing = false;
        self.cursor = self.cursor.saturating_sub(1);
    }

    /// Moves one character right.
    pub fn right(&mut self) {
        self.typing = false;
        self.cursor = (self.cursor + 1).min(self.chars.len());
    }

    /// Moves to the start of the text (Ctrl+A).
    pub fn start(&mut self) {
        self.typing = false;
        self.cursor = 0;
    }

    /// Moves to the end of the text (Ctrl+E).
    pub fn end(&mut self) {
        self.typing = false;
        self.cursor = self.chars.len();
    }

    /// Moves to the start of the current line (Home).
    pub fn line_start(&mut self) {
        self.typing = false;
        while self.cursor > 0 && self.chars[self.cursor - 1] != '\n' {
            self.cursor -= 1;
        }
    }

    /// Moves to the end of the current line (End).
    pub fn line_end(&mut self) {
        self.typing = false;
        while self.cursor < self.chars.len() && self.chars[self.cursor] != '\n' {
            self.cursor += 1;
        }
    }

    /// Moves to the start of the previous word (Ctrl+Left).
    pub fn word_left(&mut self) {
        self.typing = false;
        while self.cursor > 0 && !self.chars[self.cursor - 1].is_alphanumeric() {
            self.cursor -= 1;
        }
        while self.cursor > 0 && self.chars[self.cursor - 1].is_alphanumeric() {
            self.cursor -= 1;
        }
    }

    /// Moves past the end of the next word (Ctrl+Right).
    pub fn word_right(&mut self) {
        self.typing = false;
        let n = self.chars.len();
        while self.cursor < n && !self.chars[self.cursor].is_alphanumeric() {
            self.cursor += 1;
        }
        while self.cursor < n && self.chars[self.cursor].is_alphanumeric() {
            self.cursor += 1;
        }
    }

    /// Moves one line up, keeping the column where it can. Returns false on the first line.
    pub fn up(&mut self) -> bool {
        let (line, col) = self.cursor_line_col();
        if line == 0 {
            return false;
        }
        self.goto(line - 1, col);
        true
    }

    /// Moves one line down, keeping the column where it can. Returns false on the last line.
    pub fn down(&mut self) -> bool {
        let (line, col) = self.cursor_line_col();
        if line >= self.chars.iter().filter(|&&c| c == '\n').count() {
            return false;
        }
        self.goto(line + 1, col);
        true
    }

    fn goto(&mut self, line: usize, col: usize) {
        self.typing = false;
        let mut index = 0;
        let mut current = 0;
        while current < line && index < self.chars.len() {
            if self.chars[index] == '\n' {
                current += 1;
            }
            index += 1;
        }
        let mut c = 0;
        while c < col && index < self.chars.len() && self.chars[index] != '\n' {
            index += 1;
            c += 1;
        }
        self.cursor = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Editor {
        let mut e = Editor::default();
        for c in text.chars() {
            e.insert(c);
        }
        e
    }

    #[test]
    fn typing_then_undo_removes_the_whole_typed_run() {
        let mut e = typed("hello");
        e.left();
        e.insert('X');
        assert_eq!(e.text(), "hellXo");
        assert!(e.undo());
        assert_eq!(e.text(), "hello");
        assert!(e.undo());
        assert_eq!(e.text(), "");
        assert!(!e.undo());
    }

    #[test]
    fn clear_can_be_undone() {
        let mut e = typed("keep me");
        e.clear();
        assert!(e.is_empty());
        e.undo();
        assert_eq!(e.text(), "keep me");
    }

    #[test]
    fn start_end_and_word_moves_place_the_cursor() {
        let mut e = typed("one two three");
        e.start();
        assert_eq!(e.cursor_line_col(), (0, 0));
        e.word_right();
        assert_eq!(e.cursor_line_col(), (0, 3));
        e.end();
        e.word_left();
        assert_eq!(e.cursor_line_col(), (0, 8));
        e.insert('_');
        assert_eq!(e.text(), "one two _three");
    }

    #[test]
    fn lines_move_up_and_down_keeping_the_column() {
        let mut e = Editor::with_text("abcd\nxy\nlonger");
        assert_eq!(e.cursor_line_col(), (2, 6));
        assert!(e.up());
        assert_eq!(e.cursor_line_col(), (1, 2));
        assert!(e.up());
        e.line_end();
        assert_eq!(e.cursor_line_col(), (0, 4));
        assert!(!e.up());
        assert!(e.down());
        e.line_start();
        assert_eq!(e.cursor_line_col(), (1, 0));
    }

    #[test]
    fn backspace_and_delete_at_the_edges_do_nothing() {
        let mut e = Editor::default();
        e.backspace();
        e.delete();
        e.insert_str("a\r\nb");
        assert_eq!(e.text(), "a\nb");
        e.end();
        e.delete();
        assert_eq!(e.text(), "a\nb");
    }
}
