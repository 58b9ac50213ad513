//! Counters, gauges and latency histograms, rendered as Prometheus text by `GET /metrics`.
//! Everything is a fixed set of atomics: recording costs a few relaxed adds, no lock. The series
//! per key and model ([`Series`]) are found once per answer (one short lock), then atomics too.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::labelled::Labelled;
pub(crate) use crate::labelled::Series;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// The HTTP routes, as metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    ChatCompletions,
    Models,
    Health,
    Metrics,
    Page,
    Chats,
    WebSocket,
    Other,
}

impl Route {
    const ALL: [Route; 8] = [
        Route::ChatCompletions,
        Route::Models,
        Route::Health,
        Route::Metrics,
        Route::Page,
        Route::Chats,
        Route::WebSocket,
        Route::Other,
    ];

    pub(crate) fn of(path: &str, upgrade: bool) -> Route {
        match path {
            "/v1/chat/completions" | "/chat/completions" => Route::ChatCompletions,
            "/v1/models" | "/models" => Route::Models,
            "/health" => Route::Health,
            "/metrics" => Route::Metrics,
            "/" | "/ws" if upgrade => Route::WebSocket,
            "/" => Route::Page,
            "/chats" => Route::Chats,
            _ => Route::Other,
        }
    }

    /// The route as the conventions' `http.route` (the WebSocket's at `/` or `/ws`).
    pub(crate) fn template(self) -> &'static str {
        match self {
            Route::ChatCompletions => "/v1/chat/completions",
            Route::Models => "/v1/models",
            Route::Health => "/health",
            Route::Metrics => "/metrics",
            Route::Chats => "/chats",
            Route::Page | Route::WebSocket => "/",
            Route::Other => "*",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Route::ChatCompletions => "chat_completions",
            Route::Models => "models",
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::Page => "page",
            Route::Chats => "chats",
            Route::WebSocket => "websocket",
            Route::Other => "other",
        }
    }
}

/// The error codes counted by name; anything else counts as `other`.
pub(crate) const CODES: [&str; 14] = [
    "auth",
    "rate_limit",
    "timeout",
    "network",
    "bad_request",
    "provider",
    "cancelled",
    "config",
    "not_found",
    "forbidden",
    "limit",
    "too_large",
    "idle_timeout",
    "other",
];

const STATUS: [&str; 4] = ["2xx", "4xx", "5xx", "other"];

/// Every number the server reports.
pub(crate) struct Metrics {
    requests: [[AtomicU64; 4]; 8],
    latency: [Histogram; 8],
    http_in_flight: AtomicI64,
    unauthorized: AtomicU64,
    errors: [AtomicU64; CODES.len()],
    first_chunk: Histogram,
    ws_open: AtomicI64,
    ws_total: AtomicU64,
    ws_frames_in: AtomicU64,
    replies_in_flight: AtomicI64,
    replies_total: AtomicU64,
    reply_duration: Histogram,
    /// The series per key and model.
    labelled: Mutex<Labelled>,
    /// The names of the tokens that have one, by owner (see [`crate::auth::owner`]).
    key_names: HashMap<String, String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(crate::labelled::DEFAULT_LABEL_VALUES, HashMap::new())
    }
}

impl Metrics {
    /// The metrics of a server with these settings: its label cap and token names.
    pub(crate) fn for_settings(settings: &crate::settings::Settings) -> Self {
        let names = settings
            .token
            .iter()
            .chain(&settings.tokens)
            .filter_map(|t| Some((crate::auth::owner_of(t.expose()), t.name.clone()?)))
            .collect();
        Self::new(settings.metrics_label_values, names)
    }

    /// Metrics whose `key` and `model` labels take at most `label_values` values each; more
    /// are counted as `other`.
    fn new(label_values: usize, key_names: HashMap<String, String>) -> Self {
        Self {
            key_names,
            requests: Default::default(),
            latency: Default::default(),
            http_in_flight: AtomicI64::default(),
            unauthorized: AtomicU64::default(),
            errors: Default::default(),
            first_chunk: Histogram::default(),
            ws_open: AtomicI64::default(),
            ws_total: AtomicU64::default(),
            ws_frames_in: AtomicU64::default(),
            replies_in_flight: AtomicI64::default(),
            replies_total: AtomicU64::default(),
            reply_duration: Histogram::default(),
            labelled: Mutex::new(Labelled::new(label_values)),
        }
    }

    /// The series of answers to `who`'s key on `model` (see [`crate::labelled`]), with
    /// this answer counted. The key is a store key's name (`oy3o keys add NAME`), else the
    /// token's name, else `token-` and the start of its hash; `local` on a server without
    /// tokens.
    pub(crate) fn series(&self, who: &crate::auth::Identity, model: &str) -> Arc<Series> {
        let owner = who.owner.as_str();
        let key: std::borrow::Cow<'_, str> = match (
            who.key_name(),
            self.key_names.get(owner).map(String::as_str),
        ) {
            (Some(name), _) | (None, Some(name)) => name.into(),
            (None, None) if owner.is_empty() => "local".into(),
            (None, None) => format!("token-{}", owner.get(..8).unwrap_or(owner)).into(),
        };
        let series = self
            .labelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .series(&key, model);
        series.request();
        series
    }

    pub(crate) fn http_started(&self) {
        self.http_in_flight.fetch_add(1, Relaxed);
    }

    pub(crate) fn http_finished(&self, route: Route, status: u16, elapsed: Duration) {
        self.http_in_flight.fetch_sub(1, Relaxed);
        let class = match status {
            200..=299 | 101 => 0,
            400..=499 => 1,
            500..=599 => 2,
            _ => 3,
        };
        let r = Route::ALL
            .iter()
            .position(|x| *x == route)
            .unwrap_or(Route::ALL.len() - 1);
        self.requests[r][class].fetch_add(1, Relaxed);
        self.latency[r].observe(elapsed);
    }

    pub(crate) fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Relaxed);
    }

    /// Counts an error answered to a client (frame or HTTP error), by code.
    pub(crate) fn error(&self, code: &str) {
        let i = CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(CODES.len() - 1);
        self.errors[i].fetch_add(1, Relaxed);
    }

    pub(crate) fn first_chunk(&self, elapsed: Duration) {
        self.first_chunk.observe(elapsed);
    }

    pub(crate) fn ws_opened(&self) {
        self.ws_open.fetch_add(1, Relaxed);
        self.ws_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn ws_closed(&self) {
        self.ws_open.fetch_sub(1, Relaxed);
    }

    pub(crate) fn ws_frame_in(&self) {
        self.ws_frames_in.fetch_add(1, Relaxed);
    }

    pub(crate) fn reply_started(&self) {
        self.replies_in_flight.fetch_add(1, Relaxed);
        self.replies_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn reply_finished(&self, elapsed: Duration) {
        self.replies_in_flight.fetch_sub(1, Relaxed);
        self.reply_duration.observe(elapsed);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let o = &mut out;
        header(
            o,
            "oy3o_http_requests_total",
            "counter",
            "HTTP requests answered, by route and status class.",
        );
        for (r, route) in Route::ALL.iter().enumerate() {
            for (c, class) in STATUS.iter().enumerate() {
                let n = self.requests[r][c].load(Relaxed);
                let _ = writeln!(
                    o,
                    "oy3o_http_requests_total{{route=\"{}\",status=\"{class}\"}} {n}",
                    route.name()
                );
            }
        }
        single(
            o,
            "oy3o_http_requests_in_flight",
            "gauge",
            "HTTP requests being answered.",
            self.http_in_flight.load(Relaxed),
        );
        header(
            o,
            "oy3o_http_request_duration_seconds",
            "histogram",
            "Time to the response head (for streams: to the first chunk).",
        );
        for (r, route) in Route::ALL.iter().enumerate() {
            self.latency[r].render(
                o,
                "oy3o_http_request_duration_seconds",
                &format!("route=\"{}\"", route.name()),
            );
        }
        single(
            o,
            "oy3o_unauthorized_total",
            "counter",
            "Requests refused for a missing or wrong token.",
            self.unauthorized.load(Relaxed),
        );
        header(
            o,
            "oy3o_errors_total",
            "counter",
            "Errors answered to clients (HTTP and WebSocket), by code.",
        );
        for (i, code) in CODES.iter().enumerate() {
            let _ = writeln!(
                o,
                "oy3o_errors_total{{code=\"{code}\"}} {}",
                self.errors[i].load(Relaxed)
            );
        }
        header(
            o,
            "oy3o_first_chunk_seconds",
            "histogram",
            "Time from a request to the first answer chunk (HTTP and WebSocket).",
        );
        self.first_chunk.render(o, "oy3o_first_chunk_seconds", "");
        single(
            o,
            "oy3o_websocket_connections",
            "gauge",
            "Open WebSocket connections.",
            self.ws_open.load(Relaxed),
        );
        single(
            o,
            "oy3o_websocket_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.ws_total.load(Relaxed),
        );
        single(
            o,
            "oy3o_websocket_frames_received_total",
            "counter",
            "Frames received from WebSocket clients.",
            self.ws_frames_in.load(Relaxed),
        );
        single(
            o,
            "oy3o_replies_in_flight",
            "gauge",
            "Answers being streamed (HTTP and WebSocket).",
            self.replies_in_flight.load(Relaxed),
        );
        single(
            o,
            "oy3o_replies_total",
            "counter",
            "Answers started (HTTP and WebSocket).",
            self.replies_total.load(Relaxed),
        );
        header(
            o,
            "oy3o_reply_duration_seconds",
            "histogram",
            "Time from a request to the end of its answer.",
        );
        self.reply_duration
            .render(o, "oy3o_reply_duration_seconds", "");
        self.labelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .render(o);
        out
    }
}

/// A metric's `# HELP` and `# TYPE` lines.
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric with one unlabelled value.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counted() {
        let m = Metrics::default();
        m.http_started();
        m.http_finished(Route::Health, 200, Duration::from_micros(50));
        m.http_started();
        m.http_finished(Route::Health, 503, Duration::from_secs(100));
        let text = m.render();
        assert!(
            text.contains("oy3o_http_requests_total{route=\"health\",status=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("oy3o_http_requests_total{route=\"health\",status=\"5xx\"} 1"));
        assert!(text.contains(
            "oy3o_http_request_duration_seconds_bucket{route=\"health\",le=\"0.0001\"} 1"
        ));
        assert!(
            text.contains(
                "oy3o_http_request_duration_seconds_bucket{route=\"health\",le=\"+Inf\"} 2"
            )
        );
        assert!(text.contains("oy3o_http_requests_in_flight 0"));
    }
}
