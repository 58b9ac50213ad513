//! A child server's stderr: drained as it comes (a full pipe would stop the child), never shown
//! on our terminal, its last lines kept to quote when the server fails, with the config's
//! secrets cut out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::process::ChildStderr;

/// How many of the last lines are kept.
const LINES: usize = 12;
/// The longest line kept, in bytes; the rest of a longer one is dropped.
const LINE_BYTES: usize = 400;

/// The last lines a child wrote to stderr.
#[derive(Debug)]
pub(crate) struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    secrets: Vec<String>,
}

impl StderrTail {
    /// An empty tail whose quotes leave out `secrets` (values shorter than 4 characters are
    /// too common to be secrets, and cutting them would garble the text).
    pub(crate) fn new<'a>(secrets: impl Iterator<Item = &'a str>) -> Arc<Self> {
        Arc::new(Self {
            lines: Mutex::new(VecDeque::with_capacity(LINES)),
            secrets: secrets
                .filter(|s| s.len() >= 4)
                .map(str::to_owned)
                .collect(),
        })
    }

    fn push(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line).trim_end().to_owned();
        if line.is_empty() {
            return;
        }
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        if lines.len() == LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines, secrets replaced by `[redacted]`; empty when there are none.
    pub(crate) fn text(&self) -> String {
        let Ok(lines) = self.lines.lock() else {
            return String::new();
        };
        let mut text = lines.iter().cloned().collect::<Vec<_>>().join("\n");
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        text
    }

    /// ` Its last stderr lines:\n…` to end an error message, or nothing.
    pub(crate) fn quote(&self) -> String {
        let text = self.text();
        if text.is_empty() {
            String::new()
        } else {
            format!(" Its last stderr lines:\n{text}")
        }
    }
}

/// Reads `stderr` into `tail` until the child closes it.
pub(crate) fn drain(mut stderr: ChildStderr, tail: Arc<StderrTail>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut chunk = [0u8; 4096];
        let mut line = Vec::with_capacity(LINE_BYTES);
        loop {
            let n = match stderr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &byte in &chunk[..n] {
                if byte == b'\n' {
                    tail.push(&line);
                    line.clear();
                } else if line.len() < LINE_BYTES {
                    line.push(byte);
                }
            }
        }
        tail.push(&line);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_lines_are_kept_and_secrets_are_cut_out() {
        let tail = StderrTail::new(["sk-secret-1", "UTC"].into_iter());
        for i in 0..20 {
            tail.push(format!("line {i}").as_bytes());
        }
        tail.push(b"auth failed for sk-secret-1 in UTC");
        let text = tail.text();
        assert_eq!(text.lines().count(), LINES);
        assert!(
            !text.contains("line 8\n") && text.contains("line 19"),
            "{text}"
        );
        assert!(
            text.ends_with("auth failed for [redacted] in UTC"),
            "{text}"
        );
        assert!(tail.quote().starts_with(" Its last stderr lines:\n"));
        assert_eq!(StderrTail::new(std::iter::empty()).quote(), "");
    }
}
