//! Drawing: a pure function of the [`App`] state onto a ratatui frame, so it is tested with
//! ratatui's `TestBackend` and needs no terminal.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthChar;

use super::state::{App, Kind, Message, Screen};

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let [main, status, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(input_rows(app)),
    ])
    .areas(frame.area());
    match &app.screen {
        Screen::Flow => draw_flow(frame, app, main),
        Screen::View { index, scroll } => draw_view(frame, app, *index, *scroll, main),
        Screen::Edit { index, editor } => {
            let title = format!(" edit {index}: Ctrl+D keeps, Esc drops ");
            let block = Block::default().borders(Borders::ALL).title(title);
            let inner = block.inner(main);
            let (line, col) = editor.cursor_line_col();
            let top = line.saturating_sub(inner.height.saturating_sub(1) as usize);
            let text = editor.text();
            let lines: Vec<Line> = text.split('\n').map(|l| Line::raw(l.to_owned())).collect();
            frame.render_widget(
                Paragraph::new(lines)
                    .block(block)
                    .scroll((clamp_u16(top), 0)),
                main,
            );
            let x = inner.x + clamp_u16(col).min(inner.width.saturating_sub(1));
            let y = inner.y + clamp_u16(line - top);
            frame.set_cursor_position(Position::new(x, y));
        }
    }
    draw_status(frame, app, status);
    draw_input(frame, app, input);
}

fn clamp_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn style_of(kind: Kind) -> Style {
    match kind {
        Kind::Help => Style::default().fg(Color::Cyan),
        Kind::Info => Style::default().fg(Color::DarkGray),
        Kind::Error => Style::default().fg(Color::Red),
        Kind::Prompt => Style::default().add_modifier(Modifier::BOLD),
        Kind::Answer => Style::default(),
    }
}

/// The flow's lines for one message: `N| title`, or the body under a `N| chat>` prefix.
fn message_lines(number: usize, m: &Message) -> Vec<(String, Style)> {
    let style = style_of(m.kind);
    if !m.expanded {
        return vec![(format!("{number}| {}", m.title), style)];
    }
    let chat = m.chat.as_deref().unwrap_or("");
    let mark = match m.kind {
        Kind::Prompt => format!("{chat}>"),
        _ => format!("{chat}:"),
    };
    let mut body = m.body.clone();
    if m.streaming {
        body.push('▌');
    }
    let mut lines = Vec::new();
    let dim = Style::default().add_modifier(Modifier::DIM);
    let indent = " ".repeat(number.to_string().len() + 2);
    for (i, step) in m.tool_steps.iter().enumerate() {
        let prefix = if i == 0 {
            format!("{number}| {mark} ")
        } else {
            indent.clone()
        };
        lines.push((format!("{prefix}{step}"), dim));
    }
    let mark = if m.tool_steps.is_empty() {
        mark
    } else {
        " ".repeat(mark.chars().count())
    };
    if m.body.is_empty() && !m.reasoning.is_empty() {
        // Until the answer starts, show the end of the reasoning, dimmed, on one line.
        let last = m.reasoning.trim_end().lines().last().unwrap_or("");
        let tail: String = last
            .chars()
            .rev()
            .take(80)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        lines.push((format!("{number}| {mark} (thinking) {tail}▌"), dim));
        return lines;
    }
    for (i, line) in body.split('\n').enumerate() {
        let prefix = if i == 0 {
            format!("{number}| {mark} ")
        } else {
            " ".repeat(number.to_string().len() + 2)
        };
        lines.push((format!("{prefix}{line}"), style));
    }
    lines
}

/// Splits one line of `text` into rows at most `width` columns wide, breaking at white space:
/// a row never starts with the space it was broken at (the line's own indent stays on its
/// first row), and only a word longer than a whole row is broken inside.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let columns = |s: &str| s.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut used = 0;
    let body = text.trim_start();
    for c in text[..text.len() - body.len()].chars() {
        push_char(&mut rows, &mut row, &mut used, c, width);
    }
    let mut rest = body;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..word_end];
        let after = &rest[word_end..];
        let space_end = after
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(after.len());
        let space = &after[..space_end];
        rest = &after[space_end..];
        let needed = columns(word);
        if used > 0 && used + needed > width && needed <= width {
            rows.push(std::mem::take(&mut row));
            used = 0;
        }
        for c in word.chars() {
            push_char(&mut rows, &mut row, &mut used, c, width);
        }
        // The space after a word: kept inside a row, dropped where the row breaks.
        if used + columns(space) <= width {
            row.push_str(space);
            used += columns(space);
        } else if !rest.is_empty() {
            rows.push(std::mem::take(&mut row));
            used = 0;
        }
    }
    rows.push(row);
    // Spaces at a row's end show nothing and would count in the terminal's copy of it.
    rows.into_iter().map(|r| r.trim_end().to_owned()).collect()
}

/// Adds `c` to the row, starting a new row when it would not fit.
fn push_char(rows: &mut Vec<String>, row: &mut String, used: &mut usize, c: char, width: usize) {
    let w = c.width().unwrap_or(0);
    if *used + w > width && !row.is_empty() {
        rows.push(std::mem::take(row));
        *used = 0;
    }
    row.push(c);
    *used += w;
}

fn draw_flow(frame: &mut Frame, app: &App, area: Rect) {
    let mut lines: Vec<Line> = Vec::new();
    for (number, m) in app.messages.iter().enumerate() {
        for (text, style) in message_lines(number, m) {
            for piece in wrap(&text, area.width as usize) {
                lines.push(Line::styled(piece, style));
            }
        }
    }
    // Show the end of the flow, or further up when scrolled.
    let height = area.height as usize;
    let end = lines
        .len()
        .saturating_sub(app.flow_scroll as usize)
        .max(height.min(lines.len()));
    let start = end.saturating_sub(height);
    let shown: Vec<Line> = lines.drain(start..end).collect();
    frame.render_widget(Paragraph::new(shown), area);
}

fn draw_view(frame: &mut Frame, app: &App, index: usize, scroll: u16, area: Rect) {
    let Some(m) = app.messages.get(index) else {
        return;
    };
    let title = format!(" message {index}: Up/Down scroll, Esc back ");
    let block = Block::default().borders(Borders::ALL).title(title);
    let width = block.inner(area).width as usize;
    let mut text = ratatui::text::Text::default();
    let dim = Style::default().add_modifier(Modifier::DIM);
    for line in m.reasoning.lines() {
        for row in wrap(line, width) {
            text.push_line(Line::styled(row, dim));
        }
    }
    if !m.reasoning.is_empty() {
        text.push_line(Line::raw(""));
    }
    for step in &m.tool_steps {
        for row in wrap(step, width) {
            text.push_line(Line::styled(row, dim));
        }
    }
    if !m.tool_steps.is_empty() {
        text.push_line(Line::raw(""));
    }
    for line in m.body.split('\n') {
        for row in wrap(line, width) {
            text.push_line(Line::styled(row, style_of(m.kind)));
        }
    }
    let paragraph = Paragraph::new(text).block(block).scroll((scroll, 0));
    frame.render_widget(paragraph, area);
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let chats: Vec<String> = app
        .chats
        .iter()
        .map(|c| {
            let running = if c.running > 0 { "*" } else { "" };
            match &c.model {
                Some(m) => format!("{}({m}){running}", c.name),
                None => format!("{}{running}", c.name),
            }
        })
        .collect();
    let chats = if chats.is_empty() {
        "none".to_owned()
    } else {
        chats.join(" ")
    };
    let tasks: Vec<String> = app
        .tasks
        .iter()
        .map(|t| {
            if t.running {
                format!("{}({}/{})", t.name, t.done, t.total)
            } else {
                format!("{}(done)", t.name)
            }
        })
        .collect();
    let tasks = if tasks.is_empty() {
        "none".to_owned()
    } else {
        tasks.join(" ")
    };
    let mut text = format!("Tasks: {tasks} │ Chats: {chats}");
    if let Some(notice) = &app.notice {
        text.push_str(" │ ");
        text.push_str(notice);
    }
    let style = Style::default().add_modifier(Modifier::REVERSED);
    frame.render_widget(Paragraph::new(Line::styled(text, style)).style(style), area);
}

/// The input line's height: one row per line of input, up to [`MAX_INPUT_ROWS`].
fn input_rows(app: &App) -> u16 {
    let lines = app.input.text().split('\n').count();
    clamp_u16(lines.min(MAX_INPUT_ROWS))
}

/// The most rows a multi-line input takes; longer inputs scroll.
const MAX_INPUT_ROWS: usize = 6;

fn draw_input(frame: &mut Frame, app: &App, area: Rect) {
    let prompt = match (&app.builder, &app.current) {
        (Some(builder), _) => builder.question(),
        (None, Some(chat)) => format!("{chat}> "),
        (None, None) => "> ".to_owned(),
    };
    let indent = prompt.chars().count();
    let text = app.input.text();
    let (cursor_line, cursor_col) = app.input.cursor_line_col();
    let room = (area.width as usize).saturating_sub(indent + 1).max(1);
    let top = cursor_line.saturating_sub((area.height as usize).saturating_sub(1));
    let mut rows = Vec::new();
    let mut cursor_x = 0;
    for (i, line) in text
        .split('\n')
        .enumerate()
        .skip(top)
        .take(area.height as usize)
    {
        let chars: Vec<char> = line.chars().collect();
        // Scroll the cursor's line sideways so the cursor stays visible.
        let first = if i == cursor_line {
            cursor_col.saturating_sub(room).min(chars.len())
        } else {
            0
        };
        let shown: String = chars[first..].iter().take(room + 1).collect();
        if i == cursor_line {
            let end = cursor_col.min(chars.len());
            cursor_x = indent
                + chars[first..end]
                    .iter()
                    .map(|c| c.width().unwrap_or(0))
                    .sum::<usize>();
        }
        let lead = if i == 0 {
            Span::styled(prompt.clone(), Style::default().fg(Color::Green))
        } else {
            Span::raw(" ".repeat(indent))
        };
        rows.push(Line::from(vec![lead, Span::raw(shown)]));
    }
    frame.render_widget(Paragraph::new(rows), area);
    if app.screen == Screen::Flow {
        let x = area.x + clamp_u16(cursor_x);
        let y = area.y + clamp_u16(cursor_line - top);
        frame.set_cursor_position(Position::new(
            x.min(area.right().saturating_sub(1)),
            y.min(area.bottom().saturating_sub(1)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::commands::run_line;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..height {
            for x in 0..width {
                out.push_str(buffer[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn the_start_screen_shows_the_hint_the_status_bar_and_the_prompt() {
        let app = App::new();
        let s = screen(&app, 60, 8);
        assert!(s.contains("0| help: commands and keys"), "{s}");
        assert!(s.contains("1| enter \"view 0\" to show help"), "{s}");
        assert!(s.contains("Tasks: none │ Chats: none"), "{s}");
        assert!(s.lines().nth(7).unwrap().starts_with("> "), "{s}");
    }

    #[test]
    fn a_streaming_answer_shows_under_its_prompt_and_the_chat_is_marked_running() {
        let mut app = App::new();
        run_line(&mut app, "chat a openai:x");
        run_line(&mut app, "What is 1+1?");
        let n = app.messages.len() - 1;
        app.answer_text(n, "It is 2.");
        let s = screen(&app, 60, 10);
        assert!(s.contains("3| a> What is 1+1?"), "{s}");
        assert!(s.contains("4| a: It is 2.▌"), "{s}");
        assert!(s.contains("Chats: a(openai:x)*"), "{s}");
        assert!(s.contains("a> "), "{s}");
    }

    #[test]
    fn the_task_builder_asks_on_the_input_line_and_tasks_show_in_the_status_bar() {
        let mut app = App::new();
        run_line(&mut app, "task t");
        let s = screen(&app, 80, 6);
        assert!(
            s.contains("t stage 1 task 1 prompt (Ctrl+D sends; empty ends the stage)> "),
            "{s}"
        );
        for line in ["hi", "", "", "", "n"] {
            run_line(&mut app, line);
        }
        let s = screen(&app, 80, 6);
        assert!(s.contains("Tasks: t(0/1)"), "{s}");
        app.task_done("t");
        app.task_end("t", None);
        assert!(screen(&app, 80, 6).contains("Tasks: t(done)"));
    }

    #[test]
    fn reasoning_shows_dimmed_until_the_answer_starts_and_stays_in_view() {
        let mut app = App::new();
        run_line(&mut app, "chat a");
        run_line(&mut app, "hi");
        let n = app.messages.len() - 1;
        app.answer_reasoning(n, "Let me think.");
        assert!(screen(&app, 60, 10).contains("4| a: (thinking) Let me think.▌"));
        app.answer_text(n, "Hello.");
        let s = screen(&app, 60, 10);
        assert!(s.contains("4| a: Hello.") && !s.contains("thinking"), "{s}");
        app.screen = Screen::View {
            index: n,
            scroll: 0,
        };
        let s = screen(&app, 60, 10);
        assert!(s.contains("Let me think.") && s.contains("Hello."), "{s}");
    }

    #[test]
    fn a_multi_line_input_grows_the_input_area() {
        let mut app = App::new();
        app.input = crate::app::editor::Editor::with_text("first line\nsecond line");
        let s = screen(&app, 40, 8);
        let rows: Vec<&str> = s.lines().collect();
        assert!(rows[6].starts_with("> first line"), "{s}");
        assert!(rows[7].starts_with("  second line"), "{s}");
        assert!(rows[5].starts_with("Tasks: none"), "{s}");
    }

    #[test]
    fn the_flow_keeps_its_end_in_view_and_wraps_long_lines() {
        let mut app = App::new();
        for i in 0..30 {
            run_line(&mut app, &format!("nosuch{i}"));
        }
        run_line(&mut app, &format!("x{}", "y".repeat(100)));
        let s = screen(&app, 40, 8);
        assert!(s.contains("unknown command: xyyy"), "{s}");
        assert!(!s.contains("0| help"), "{s}");
    }

    #[test]
    fn long_lines_wrap_between_words_and_no_row_starts_with_the_space_it_broke_at() {
        assert_eq!(wrap("the quick brown fox", 10), ["the quick", "brown fox"]);
        assert_eq!(
            wrap("  indented text here", 10),
            ["  indented", "text here"]
        );
        assert_eq!(wrap("abcdefghijkl", 5), ["abcde", "fghij", "kl"]);
        assert_eq!(
            wrap("a verylongwordhere", 6),
            ["a very", "longwo", "rdhere"]
        );
        assert_eq!(wrap("日本語 テキスト", 7), ["日本語", "テキス", "ト"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(wrap("fits", 0), ["f", "i", "t", "s"]);
    }

    #[test]
    fn a_viewed_message_wraps_between_words() {
        let mut app = App::new();
        let text = "The quick brown fox jumps over the lazy dog while the cat watches.";
        app.push(Message::note(Kind::Answer, text));
        app.screen = Screen::View {
            index: 2,
            scroll: 0,
        };
        let s = screen(&app, 24, 12);
        let shown: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix('│').and_then(|l| l.strip_suffix('│')))
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(shown.join(" "), text, "{s}");
        assert!(shown.iter().all(|l| !l.starts_with(' ')), "{s}");
    }

    #[test]
    fn view_shows_the_whole_message_and_tiny_screens_do_not_panic() {
        let mut app = App::new();
        run_line(&mut app, "view 0");
        let s = screen(&app, 80, 30);
        assert!(s.contains("message 0"), "{s}");
        assert!(s.contains("Ctrl+Z"), "{s}");
        for (w, h) in [(1, 1), (3, 2), (10, 3)] {
            screen(&app, w, h);
        }
        run_line(&mut App::new(), "edit 0");
        let mut editing = App::new();
        run_line(&mut editing, "edit 1");
        for (w, h) in [(1, 1), (5, 4), (60, 12)] {
            screen(&editing, w, h);
        }
    }
}
