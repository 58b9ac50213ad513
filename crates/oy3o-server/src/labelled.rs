//! The Prometheus series per key and model: answers, tokens in and out, errors by code, time
//! to first chunk and cost. Label values are bounded: each label takes at most a fixed number
//! of distinct values (`[server] metrics_label_values`, default 64); answers past it count
//! under `other`, so a client naming endless models cannot grow the exposition. Values are
//! escaped as the text format asks
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/#text-format-details>).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::metrics::{CODES, Histogram, header};

/// Distinct values of each label unless configured.
pub(crate) const DEFAULT_LABEL_VALUES: usize = 64;

/// The value that stands for every value past the cap (and for over-long ones).
const OTHER: &str = "other";

/// A label value longer than this counts as `other`.
const MAX_VALUE_BYTES: usize = 128;

/// The numbers of one key on one model.
#[derive(Default)]
pub(crate) struct Series {
    requests: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    errors: [AtomicU64; CODES.len()],
    first_chunk: Histogram,
    /// In millionths of a US dollar.
    cost_micro_usd: AtomicU64,
}

impl Series {
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    /// The time to the answer's first chunk (streamed answers).
    pub(crate) fn first_chunk(&self, elapsed: Duration) {
        self.first_chunk.observe(elapsed);
    }

    /// The tokens an answer used.
    pub(crate) fn usage(&self, usage: Option<&oy3o::Usage>) {
        if let Some(u) = usage {
            self.input_tokens.fetch_add(u.input_tokens, Relaxed);
            self.output_tokens.fetch_add(u.output_tokens, Relaxed);
        }
    }

    /// An error answered, by code (unknown codes count as `other`).
    pub(crate) fn error(&self, code: &str) {
        let i = CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(CODES.len() - 1);
        self.errors[i].fetch_add(1, Relaxed);
    }

    /// What an answer cost, in US dollars, once it is priced (the cost of a turn, issue 22's
    /// price table); rendered as `oy3o_cost_usd_total`.
    #[allow(dead_code)] // the hook for the price table
    pub(crate) fn cost(&self, usd: f64) {
        if usd.is_finite() && usd > 0.0 {
            self.cost_micro_usd
                .fetch_add((usd * 1e6).round() as u64, Relaxed);
        }
    }
}

/// The series by label values, each label capped.
pub(crate) struct Labelled {
    cap: usize,
    keys: Vec<Box<str>>,
    models: Vec<Box<str>>,
    series: BTreeMap<(usize, usize), Arc<Series>>,
}

impl Labelled {
    /// Labels of at most `cap` values each (at least one: `other` is always there).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            keys: Vec::new(),
            models: Vec::new(),
            series: BTreeMap::new(),
        }
    }

    /// The series of `key` on `model`, made on first use.
    pub(crate) fn series(&mut self, key: &str, model: &str) -> Arc<Series> {
        let k = value(&mut self.keys, self.cap, key);
        let m = value(&mut self.models, self.cap, model);
        self.series.entry((k, m)).or_default().clone()
    }

    /// The series as Prometheus text.
    pub(crate) fn render(&self, o: &mut String) {
        let labels = |&(k, m): &(usize, usize)| {
            format!(
                "key=\"{}\",model=\"{}\"",
                escaped(&self.keys[k]),
                escaped(&self.models[m])
            )
        };
        let counter = |o: &mut String, name: &str, help: &str, of: &dyn Fn(&Series) -> u64| {
            header(o, name, "counter", help);
            for (at, s) in &self.series {
                let _ = writeln!(o, "{name}{{{}}} {}", labels(at), of(s));
            }
        };
        counter(
            o,
            "oy3o_model_requests_total",
            "Answers started, by key and model (the model as the client named it).",
            &|s| s.requests.load(Relaxed),
        );
        counter(
            o,
            "oy3o_model_input_tokens_total",
            "Tokens read by the models, by key and model.",
            &|s| s.input_tokens.load(Relaxed),
        );
        counter(
            o,
            "oy3o_model_output_tokens_total",
            "Tokens written by the models, by key and model.",
            &|s| s.output_tokens.load(Relaxed),
        );
        header(
            o,
            "oy3o_model_errors_total",
            "counter",
            "Answers that failed, by key, model and error code.",
        );
        for (at, s) in &self.series {
            for (i, code) in CODES.iter().enumerate() {
                let n = s.errors[i].load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        o,
                        "oy3o_model_errors_total{{{},code=\"{code}\"}} {n}",
                        labels(at)
                    );
                }
            }
        }
        header(
            o,
            "oy3o_model_time_to_first_chunk_seconds",
            "histogram",
            "Time from a streamed request to its first answer chunk, by key and model.",
        );
        for (at, s) in &self.series {
            s.first_chunk
                .render(o, "oy3o_model_time_to_first_chunk_seconds", &labels(at));
        }
        header(
            o,
            "oy3o_model_cost_usd_total",
            "counter",
            "What the answers cost in US dollars, by key and model (priced answers only).",
        );
        for (at, s) in &self.series {
            let micro = s.cost_micro_usd.load(Relaxed);
            let _ = writeln!(
                o,
                "oy3o_model_cost_usd_total{{{}}} {}",
                labels(at),
                micro as f64 / 1e6
            );
        }
    }
}

/// The index of `wanted` among `values`, added while there is room; else `other`'s.
fn value(values: &mut Vec<Box<str>>, cap: usize, wanted: &str) -> usize {
    let wanted = if wanted.len() > MAX_VALUE_BYTES {
        OTHER
    } else {
        wanted
    };
    if let Some(i) = values.iter().position(|v| **v == *wanted) {
        return i;
    }
    // One place is kept for `other` once the others are taken.
    if values.len() + 1 < cap || wanted == OTHER {
        values.push(wanted.into());
        return values.len() - 1;
    }
    match values.iter().position(|v| **v == *OTHER) {
        Some(i) => i,
        None => {
            values.push(OTHER.into());
            values.len() - 1
        }
    }
}

/// A label value as the text format writes it: `\`, `"` and newlines escaped.
fn escaped(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_label_takes_at_most_the_cap_and_the_rest_is_other() {
        let mut l = Labelled::new(3);
        for model in ["a", "b", "c", "d", "e"] {
            l.series("alice", model).request();
        }
        l.series("bob", "a").request();
        l.series("carol", "a").request();
        l.series("dave", "a").request();
        let mut text = String::new();
        l.render(&mut text);
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("oy3o_model_requests_total{"))
            .collect();
        assert!(requests.contains(&"oy3o_model_requests_total{key=\"alice\",model=\"a\"} 1"));
        assert!(requests.contains(&"oy3o_model_requests_total{key=\"alice\",model=\"b\"} 1"));
        assert!(
            requests.contains(&"oy3o_model_requests_total{key=\"alice\",model=\"other\"} 3"),
            "{requests:?}"
        );
        assert!(requests.contains(&"oy3o_model_requests_total{key=\"bob\",model=\"a\"} 1"));
        assert!(requests.contains(&"oy3o_model_requests_total{key=\"other\",model=\"a\"} 2"));
        assert_eq!(l.keys.len(), 3);
        assert_eq!(l.models.len(), 3);
    }

    #[test]
    fn values_are_escaped_and_long_ones_are_other() {
        let mut l = Labelled::new(8);
        l.series("k", "we\"ird\\\nname").usage(Some(&oy3o::Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Default::default()
        }));
        l.series("k", &"x".repeat(200)).error("rate_limit");
        let mut text = String::new();
        l.render(&mut text);
        assert!(
            text.contains(
                "oy3o_model_input_tokens_total{key=\"k\",model=\"we\\\"ird\\\\\\nname\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "oy3o_model_errors_total{key=\"k\",model=\"other\",code=\"rate_limit\"} 1"
            )
        );
    }
}
