//! When and how long to wait before trying a request again, as the official OpenAI and
//! Anthropic SDKs do (`_base_client.py`: `_should_retry`, `_parse_retry_after_header`,
//! `_calculate_retry_timeout`): `x-should-retry` decides first; then 408, 409, 429 and 5xx are
//! retried; a server-given `retry-after-ms` / `retry-after` (seconds or HTTP date) is honoured
//! up to 120 s; otherwise `min(0.5 * 2^n, 8)` seconds with up to 25 % jitter.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// The longest server-requested delay we wait for; longer means "do not retry now".
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Retry settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay.
    pub initial_delay: Duration,
    /// Backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Give up.
    Stop,
}

impl RetryPolicy {
    /// Decides after an HTTP error status. `attempt` counts retries already made.
    pub fn after_status(
        &self,
        attempt: u32,
        status: StatusCode,
        headers: &HeaderMap,
        hint: Option<Duration>,
    ) -> Verdict {
        if attempt >= self.max_retries {
            return Verdict::Stop;
        }
        let forced = headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        let retryable = forced.unwrap_or_else(|| {
            matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
        });
        if !retryable {
            return Verdict::Stop;
        }
        match retry_after(headers).or(hint) {
            Some(d) if d <= MAX_RETRY_AFTER => Verdict::RetryAfter(d),
            Some(_) => Verdict::Stop,
            None => Verdict::RetryAfter(self.backoff(attempt)),
        }
    }

    /// Decides after a connection failure or a timeout before any answer.
    pub fn after_transport_error(&self, attempt: u32) -> Verdict {
        if attempt >= self.max_retries {
            Verdict::Stop
        } else {
            Verdict::RetryAfter(self.backoff(attempt))
        }
    }

    /// `min(initial * 2^attempt, max)` minus up to 25 % jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let jitter = 1.0 - 0.25 * random_unit();
        base.mul_f64(jitter)
    }
}

/// The delay a response asks for: `retry-after-ms`, else `retry-after` as seconds (float) or
/// an HTTP date.
///
/// ```
/// use reqwest::header::{HeaderMap, HeaderValue};
/// use oy3o::transport::retry::retry_after;
/// let mut h = HeaderMap::new();
/// h.insert("retry-after", HeaderValue::from_static("1.5"));
/// assert_eq!(retry_after(&h), Some(std::time::Duration::from_millis(1500)));
/// ```
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A number in [0, 1) that differs between calls; jitter needs no real randomness.
fn random_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn retryable_statuses_follow_the_sdk_rules() {
        let p = RetryPolicy::default();
        let none = HeaderMap::new();
        for code in [408, 409, 429, 500, 503, 529] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(
                matches!(
                    p.after_status(0, status, &none, None),
                    Verdict::RetryAfter(_)
                ),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 422] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                p.after_status(0, status, &none, None),
                Verdict::Stop,
                "{code}"
            );
        }
        assert_eq!(
            p.after_status(2, StatusCode::TOO_MANY_REQUESTS, &none, None),
            Verdict::Stop
        );
    }

    #[test]
    fn x_should_retry_overrides_the_status() {
        let p = RetryPolicy::default();
        let no = headers(&[("x-should-retry", "false")]);
        assert_eq!(
            p.after_status(0, StatusCode::SERVICE_UNAVAILABLE, &no, None),
            Verdict::Stop
        );
        let yes = headers(&[("x-should-retry", "true")]);
        assert!(matches!(
            p.after_status(0, StatusCode::BAD_REQUEST, &yes, None),
            Verdict::RetryAfter(_)
        ));
    }

    #[test]
    fn retry_after_ms_wins_and_long_delays_stop() {
        let p = RetryPolicy::default();
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "9")]);
        assert_eq!(
            p.after_status(0, StatusCode::TOO_MANY_REQUESTS, &h, None),
            Verdict::RetryAfter(Duration::from_millis(250))
        );
        let long = headers(&[("retry-after", "600")]);
        assert_eq!(
            p.after_status(0, StatusCode::TOO_MANY_REQUESTS, &long, None),
            Verdict::Stop
        );
    }

    #[test]
    fn retry_after_accepts_an_http_date() {
        let later = SystemTime::now() + Duration::from_secs(30);
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[test]
    fn backoff_grows_to_the_ceiling_with_bounded_jitter() {
        let p = RetryPolicy::default();
        for (attempt, nominal) in [(0, 0.5), (1, 1.0), (2, 2.0), (5, 8.0), (9, 8.0)] {
            let d = p.backoff(attempt).as_secs_f64();
            assert!(d <= nominal && d >= nominal * 0.75, "{attempt}: {d}");
        }
    }
}
