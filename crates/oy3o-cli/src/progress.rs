//! Progress lines on stderr: a model pull bar (bytes, rate, ETA) and the chain status line.
//! Drawn in place on a terminal; on a pipe only the start and the end are written.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Draws one progress line.
pub struct ProgressLine {
    tty: bool,
    started: Instant,
    announced: bool,
}

impl ProgressLine {
    /// A line on stderr.
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            announced: false,
        }
    }

    /// Shows a pull's progress.
    pub fn pull(&mut self, source: &str, downloaded: u64, total: Option<u64>) {
        let mb = |b: u64| b as f64 / 1_000_000.0;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = downloaded as f64 / secs;
        let line = match total {
            Some(t) if t > 0 => {
                let frac = (downloaded as f64 / t as f64).min(1.0);
                let filled = (frac * 24.0) as usize;
                let eta = if rate > 0.0 {
                    (t.saturating_sub(downloaded)) as f64 / rate
                } else {
                    0.0
                };
                format!(
                    "pulling model from {source}: [{}{}] {:.1}/{:.1} MB {:.1} MB/s ETA {:.0}s",
                    "#".repeat(filled),
                    "-".repeat(24 - filled),
                    mb(downloaded),
                    mb(t),
                    mb(rate as u64),
                    eta
                )
            }
            _ => format!(
                "pulling model from {source}: {:.1} MB {:.1} MB/s",
                mb(downloaded),
                mb(rate as u64)
            ),
        };
        let done = total.is_some_and(|t| downloaded >= t);
        self.show(&line, done);
    }

    /// Shows a status line (chain progress).
    pub fn status(&mut self, line: &str) {
        self.show(line, false);
    }

    /// Ends the line so later output starts clean.
    pub fn finish(&mut self) {
        if self.tty && self.announced {
            eprintln!();
            self.announced = false;
        }
    }

    /// Erases a line still being drawn (a status that is over) on a terminal; elsewhere ends it.
    pub fn clear(&mut self) {
        if self.tty && self.announced {
            eprint!("\r\x1b[2K");
            self.announced = false;
        } else {
            self.finish();
        }
    }

    fn show(&mut self, line: &str, done: bool) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            if done {
                let _ = writeln!(err);
                self.announced = false;
                return;
            }
            self.announced = true;
        } else if !self.announced || done {
            let _ = writeln!(err, "{line}");
            self.announced = true;
        }
        let _ = err.flush();
    }
}
