//! Keys and pastes: what each one does to the state on each screen.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::commands::{self, Effect};
use super::editor::Editor;
use super::state::{App, Screen};

/// Applies one key press; returns the work it asks of the runtime.
pub fn key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    app.notice = None;
    match &mut app.screen {
        Screen::Flow => flow_key(app, key),
        Screen::View { scroll, .. } => {
            match key.code {
                KeyCode::Up => *scroll = scroll.saturating_sub(1),
                KeyCode::Down => *scroll = scroll.saturating_add(1),
                KeyCode::PageUp => *scroll = scroll.saturating_sub(10),
                KeyCode::PageDown => *scroll = scroll.saturating_add(10),
                KeyCode::Home => *scroll = 0,
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => app.screen = Screen::Flow,
                KeyCode::Char('d') if ctrl(&key) => app.screen = Screen::Flow,
                _ => {}
            }
            Vec::new()
        }
        Screen::Edit { editor, .. } => {
            if ctrl(&key) && key.code == KeyCode::Char('d') {
                commands::finish_edit(app);
                return Vec::new();
            }
            if key.code == KeyCode::Esc {
                app.screen = Screen::Flow;
                app.notice = Some("edit dropped".into());
                return Vec::new();
            }
            match key.code {
                KeyCode::Enter => editor.insert('\n'),
                KeyCode::Up => {
                    editor.up();
                }
                KeyCode::Down => {
                    editor.down();
                }
                _ => return edit_key(editor, key, &mut app.notice),
            }
            Vec::new()
        }
    }
}

/// A bracketed paste from the terminal: inserted where the cursor is.
pub fn paste(app: &mut App, text: &str) {
    match &mut app.screen {
        // A paste never submits: its newlines make a multi-line input.
        Screen::Flow => app.input.insert_str(text),
        Screen::Edit { editor, .. } => editor.insert_str(text),
        Screen::View { .. } => {}
    }
}

fn ctrl(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL)
}

fn flow_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        // Alt+Enter or Ctrl+J: a new line in the input (a multi-line prompt).
        KeyCode::Enter if key.modifiers.contains(KeyModifiers::ALT) => app.input.insert('\n'),
        KeyCode::Char('j') if ctrl(&key) => app.input.insert('\n'),
        // A task's prompt is a multi-line editor: Enter is a new line, Ctrl+D sends.
        KeyCode::Enter
            if !app.input.is_empty() && app.builder.as_ref().is_some_and(|b| b.asks_prompt()) =>
        {
            app.input.insert('\n')
        }
        KeyCode::Enter => return commands::submit(app),
        KeyCode::Char('d') if ctrl(&key) => return commands::submit(app),
        KeyCode::Esc if app.input.is_empty() && running_chat(app).is_some() => {
            app.notice = Some("answer stopped".into());
            return running_chat(app).map(Effect::Stop).into_iter().collect();
        }
        KeyCode::Esc if app.input.is_empty() && app.builder.is_some() => {
            app.builder = None;
            app.notice = Some("task dropped".into());
        }
        KeyCode::Esc => {
            app.history_pos = None;
            app.input.clear();
        }
        // In a multi-line input Up/Down move between its lines first.
        KeyCode::Up if app.input.up() => {}
        KeyCode::Down if app.input.down() => {}
        KeyCode::Up => history(app, true),
        KeyCode::Down => history(app, false),
        KeyCode::PageUp => app.flow_scroll = app.flow_scroll.saturating_add(10),
        KeyCode::PageDown => app.flow_scroll = app.flow_scroll.saturating_sub(10),
        _ => return edit_key(&mut app.input, key, &mut app.notice),
    }
    Vec::new()
}

/// The editor keys shared by the input line and the edit screen.
fn edit_key(editor: &mut Editor, key: KeyEvent, notice: &mut Option<String>) -> Vec<Effect> {
    let word = key
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
    match key.code {
        KeyCode::Char('a') if ctrl(&key) => editor.start(),
        KeyCode::Char('e') if ctrl(&key) => editor.end(),
        KeyCode::Char('x') if ctrl(&key) => editor.clear(),
        KeyCode::Char('z') if ctrl(&key) => {
            let undone = editor.undo();
            if !undone {
                *notice = Some("nothing to undo".into());
            }
        }
        KeyCode::Char('c') if ctrl(&key) => {
            if editor.is_empty() {
                *notice = Some("nothing to copy (enter exit to leave the app)".into());
                return Vec::new();
            }
            *notice = Some("copied".into());
            return vec![Effect::Copy(editor.text())];
        }
        KeyCode::Char('v') if ctrl(&key) => return vec![Effect::Paste],
        KeyCode::Char('b') if key.modifiers.contains(KeyModifiers::ALT) => editor.word_left(),
        KeyCode::Char('f') if key.modifiers.contains(KeyModifiers::ALT) => editor.word_right(),
        KeyCode::Char(c) if !ctrl(&key) => editor.insert(c),
        KeyCode::Left if word => editor.word_left(),
        KeyCode::Right if word => editor.word_right(),
        KeyCode::Left => editor.left(),
        KeyCode::Right => editor.right(),
        KeyCode::Home => editor.line_start(),
        KeyCode::End => editor.line_end(),
        KeyCode::Backspace => editor.backspace(),
        KeyCode::Delete => editor.delete(),
        KeyCode::Tab => editor.insert_str("    "),
        _ => {}
    }
    Vec::new()
}

/// The current chat, when an answer in it is still streaming.
fn running_chat(app: &App) -> Option<String> {
    let name = app.current.as_deref()?;
    app.chats
        .iter()
        .find(|c| c.name == name && c.running > 0)
        .map(|c| c.name.clone())
}

/// Up (`back`) and Down through the lines entered before.
fn history(app: &mut App, back: bool) {
    if app.history.is_empty() {
        return;
    }
    let pos = match (app.history_pos, back) {
        (None, true) => {
            app.history_draft = app.input.text();
            Some(app.history.len() - 1)
        }
        (None, false) => return,
        (Some(p), true) => Some(p.saturating_sub(1)),
        (Some(p), false) if p + 1 < app.history.len() => Some(p + 1),
        (Some(_), false) => None,
    };
    app.history_pos = pos;
    let text = match pos {
        Some(p) => app.history[p].clone(),
        None => std::mem::take(&mut app.history_draft),
    };
    app.input.set_text(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
        key(app, KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ctrl_key(app: &mut App, c: char) -> Vec<Effect> {
        key(app, KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    #[test]
    fn editor_keys_move_clear_undo_and_copy() {
        let mut app = App::new();
        type_text(&mut app, "world");
        ctrl_key(&mut app, 'a');
        type_text(&mut app, "hello ");
        assert_eq!(app.input.text(), "hello world");
        ctrl_key(&mut app, 'e');
        type_text(&mut app, "!");
        ctrl_key(&mut app, 'x');
        assert!(app.input.is_empty());
        ctrl_key(&mut app, 'z');
        assert_eq!(app.input.text(), "hello world!");
        assert_eq!(
            ctrl_key(&mut app, 'c'),
            vec![Effect::Copy("hello world!".into())]
        );
        assert_eq!(ctrl_key(&mut app, 'v'), vec![Effect::Paste]);
        press(&mut app, KeyCode::Esc);
        assert!(app.input.is_empty());
    }

    #[test]
    fn up_and_down_walk_the_history_and_come_back_to_the_draft() {
        let mut app = App::new();
        type_text(&mut app, "view 0");
        press(&mut app, KeyCode::Enter);
        press(&mut app, KeyCode::Esc);
        type_text(&mut app, "frob");
        press(&mut app, KeyCode::Enter);
        type_text(&mut app, "dra");
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input.text(), "frob");
        press(&mut app, KeyCode::Up);
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input.text(), "view 0");
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        assert_eq!(app.input.text(), "dra");
    }

    #[test]
    fn ctrl_d_submits_and_esc_leaves_a_view() {
        let mut app = App::new();
        type_text(&mut app, "view 0");
        ctrl_key(&mut app, 'd');
        assert_eq!(
            app.screen,
            Screen::View {
                index: 0,
                scroll: 0
            }
        );
        press(&mut app, KeyCode::Down);
        assert_eq!(
            app.screen,
            Screen::View {
                index: 0,
                scroll: 1
            }
        );
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.screen, Screen::Flow);
    }

    #[test]
    fn esc_drops_an_edit_and_ctrl_d_keeps_it() {
        let mut app = App::new();
        type_text(&mut app, "edit 1");
        press(&mut app, KeyCode::Enter);
        type_text(&mut app, "garbage");
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.screen, Screen::Flow);
        assert_eq!(app.messages[1].body, "enter \"view 0\" to show help");

        type_text(&mut app, "edit 1");
        press(&mut app, KeyCode::Enter);
        ctrl_key(&mut app, 'd');
        assert_eq!(app.screen, Screen::Flow);
        assert_eq!(app.notice.as_deref(), Some("message 1 changed"));
    }

    #[test]
    fn esc_on_an_empty_line_stops_the_streaming_answer_of_the_chat() {
        let mut app = App::new();
        for line in ["chat a", "hi"] {
            type_text(&mut app, line);
            press(&mut app, KeyCode::Enter);
        }
        assert_eq!(
            press(&mut app, KeyCode::Esc),
            vec![Effect::Stop("a".into())]
        );
        let n = app.messages.len() - 1;
        app.answer_done(n, Some("stopped".into()));
        assert!(press(&mut app, KeyCode::Esc).is_empty());
    }

    #[test]
    fn alt_enter_makes_a_multi_line_prompt_and_up_moves_within_it() {
        let mut app = App::new();
        type_text(&mut app, "one");
        key(&mut app, KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
        type_text(&mut app, "two");
        assert_eq!(app.input.text(), "one\ntwo");
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input.cursor_line_col(), (0, 3));
        ctrl_key(&mut app, 'j');
        assert_eq!(app.input.text(), "one\n\ntwo");
    }

    #[test]
    fn a_tasks_prompt_is_multi_line_until_ctrl_d_and_enter_on_empty_ends_the_stage() {
        let mut app = App::new();
        type_text(&mut app, "task t");
        press(&mut app, KeyCode::Enter);
        type_text(&mut app, "Line one");
        press(&mut app, KeyCode::Enter);
        type_text(&mut app, "line two");
        assert_eq!(app.input.text(), "Line one\nline two");
        ctrl_key(&mut app, 'd');
        assert!(app.input.is_empty());
        // Model and context are one line each: Enter answers them.
        press(&mut app, KeyCode::Enter);
        press(&mut app, KeyCode::Enter);
        // An empty prompt ends the stage; no more stages runs the chain.
        press(&mut app, KeyCode::Enter);
        type_text(&mut app, "n");
        let effects = press(&mut app, KeyCode::Enter);
        let [Effect::RunChain { stages, .. }] = effects.as_slice() else {
            panic!("{effects:?}");
        };
        assert_eq!(stages[0][0].prompt, "Line one\nline two");
    }

    #[test]
    fn a_pasted_newline_does_not_submit_the_input_line() {
        let mut app = App::new();
        paste(&mut app, "one\ntwo");
        assert_eq!(app.input.text(), "one\ntwo");
        assert_eq!(app.messages.len(), 2);
    }
}
