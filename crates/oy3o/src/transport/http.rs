//! Sending a request to a provider: retries before the first answer byte (with a `retry` event
//! each time), status errors mapped to [`ErrorCode`]s with messages that say what to do, and
//! the answer body read with first-byte and idle timeouts.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::client;
use super::retry::{RetryPolicy, Verdict};
use super::sse::SseEvent;
use crate::config::{Target, Timeouts};
use crate::credential::Credential;
use crate::error::{Error, ErrorCode, Result};
use crate::event::Event;
use crate::provider::{Delta, DeltaStream};

/// The least time a whole (non-streamed) answer may take before its response head arrives
/// ([`Upstream::for_whole_answer`]).
pub const WHOLE_ANSWER_LIMIT: Duration = Duration::from_secs(600);

/// What a provider's error body says, as far as it can be read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorDetail {
    /// The provider's own message.
    pub message: Option<String>,
    /// A code that overrides the one the status implies (e.g. quota exhaustion is not a rate
    /// limit worth retrying).
    pub code: Option<ErrorCode>,
    /// Whether to retry regardless of the status (`Some(false)`: never).
    pub retryable: Option<bool>,
    /// A delay the body asks for (Gemini's `RetryInfo`).
    pub retry_hint: Option<Duration>,
    /// What to do next, when the body says more than the status does (Ollama: `ollama pull`).
    pub advice: Option<String>,
}

/// How one provider is reached: the shared client, time limits, retry policy and how its error
/// bodies read. Built per request by the provider from its [`crate::Target`].
#[derive(Clone)]
pub struct Upstream {
    /// The provider's name, for messages.
    pub provider: &'static str,
    /// The shared client for the target's proxy.
    pub client: reqwest::Client,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Retry policy before the first answer byte.
    pub retry: RetryPolicy,
    /// The environment variable that holds the key, for auth messages.
    pub key_env: Option<String>,
    /// The credential, so that messages echoing it can be redacted.
    pub credential: Option<Credential>,
    /// Reads the provider's error body.
    pub read_error: fn(StatusCode, &str) -> ErrorDetail,
}

/// A step while opening a request: a retry being waited for, or the response.
pub enum Opened {
    /// An attempt failed and another follows after the delay in the event.
    Retry(Event),
    /// A 2xx response whose body is the answer.
    Response(Response),
}

impl Upstream {
    /// How `provider` reaches `target`: the shared client for its proxy, its time limits and
    /// retry count, and `read_error` for its error bodies.
    pub fn for_target(
        provider: &'static str,
        target: &Target,
        read_error: fn(StatusCode, &str) -> ErrorDetail,
    ) -> Result<Self> {
        let timeouts = target.settings.timeouts();
        Ok(Self {
            provider,
            client: client::shared(target.proxy.as_deref(), timeouts.connect)?,
            timeouts,
            retry: RetryPolicy {
                max_retries: target.settings.max_retries.unwrap_or(2),
                ..RetryPolicy::default()
            },
            key_env: target.key_env.clone(),
            credential: target.credential.clone(),
            read_error,
        })
    }

    /// A whole answer: sends the request built by `build` ([`Upstream::open`], each retry a
    /// `retry` event), then streams the deltas `read` makes of the response.
    pub fn answer<F, R>(&self, build: F, read: R) -> DeltaStream
    where
        F: Fn(&reqwest::Client) -> RequestBuilder + Send + Sync + 'static,
        R: FnOnce(Response) -> DeltaStream + Send + 'static,
    {
        let mut opening = self.open(build);
        Box::pin(async_stream::try_stream! {
            let mut response = None;
            while let Some(step) = opening.next().await {
                match step? {
                    Opened::Retry(event) => yield Delta::Event(event),
                    Opened::Response(r) => response = Some(r),
                }
            }
            if let Some(response) = response {
                let mut deltas = read(response);
                while let Some(delta) = deltas.next().await {
                    yield delta?;
                }
            }
        })
    }

    /// Sends the request built by `build` until a 2xx response arrives, retrying per the
    /// policy; yields a [`Opened::Retry`] before each wait.
    pub fn open<F>(&self, build: F) -> BoxStream<'static, Result<Opened>>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder + Send + Sync + 'static,
    {
        let this = self.clone();
        Box::pin(async_stream::try_stream! {
            let mut attempt = 0u32;
            loop {
                let sent = tokio::time::timeout(this.timeouts.first_byte, build(&this.client).send()).await;
                let (verdict, error) = match sent {
                    Ok(Ok(response)) if response.status().is_success() => {
                        yield Opened::Response(response);
                        return;
                    }
                    Ok(Ok(response)) => {
                        let status = response.status();
                        let headers = response.headers().clone();
                        let body = read_body(response, this.timeouts.idle).await;
                        let detail = (this.read_error)(status, &body);
                        let error = this.status_error(status, &detail, &body);
                        let verdict = match detail.retryable {
                            Some(false) => Verdict::Stop,
                            _ => this.retry.after_status(attempt, status, &headers, detail.retry_hint),
                        };
                        (verdict, (error, format!("HTTP {}", status.as_u16())))
                    }
                    Ok(Err(e)) => {
                        let error = this.transport_error(&e);
                        (this.retry.after_transport_error(attempt), (error, "connection failed".to_owned()))
                    }
                    Err(_) => {
                        let error = Error::new(ErrorCode::Timeout, format!(
                            "{} sent no answer within {:.0?}; it may be overloaded: try again later, \
                             or raise first_byte_timeout_secs in the provider's config section",
                            this.provider, this.timeouts.first_byte
                        ));
                        (this.retry.after_transport_error(attempt), (error, "timeout".to_owned()))
                    }
                };
                let (error, reason) = error;
                match verdict {
                    Verdict::Stop => Err(error)?,
                    Verdict::RetryAfter(delay) => {
                        attempt += 1;
                        yield Opened::Retry(Event::Retry {
                            attempt,
                            delay_ms: delay.as_millis() as u64,
                            reason,
                        });
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        })
    }

    /// The answer body in chunks: the first within the first-byte limit, then no gap longer
    /// than the idle limit (checked lazily: a silent stream fails between one and two idle
    /// limits after its last chunk, so the hot path reads no clock per chunk). A broken
    /// connection is a [`ErrorCode::Network`] error.
    pub fn body(&self, response: Response) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let provider = self.provider;
        let Timeouts {
            first_byte, idle, ..
        } = self.timeouts;
        async_stream::try_stream! {
            let mut body = response.bytes_stream();
            let mut received = 0usize;
            let mut active = false;
            let deadline = tokio::time::sleep(first_byte);
            futures::pin_mut!(deadline);
            loop {
                let next = tokio::select! {
                    biased;
                    next = body.next() => Some(next),
                    () = &mut deadline => None,
                };
                let Some(next) = next else {
                    if active {
                        active = false;
                        deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                        continue;
                    }
                    let limit = if received == 0 { first_byte } else { idle };
                    Err(Error::new(ErrorCode::Timeout, format!(
                        "{provider} stopped sending for {limit:.0?} in the middle of the answer; \
                         try again, or raise idle_timeout_secs in the provider's config section"
                    )))?;
                    return;
                };
                match next {
                    None => return,
                    Some(Err(e)) => Err(Error::network(format!(
                        "the connection to {provider} broke after {received} bytes of the answer ({e}); \
                         the answer is incomplete, try again"
                    )))?,
                    Some(Ok(chunk)) => {
                        if received == 0 {
                            // From now on the idle limit applies.
                            deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                        }
                        received += chunk.len();
                        active = true;
                        yield chunk;
                    }
                }
            }
        }
    }

    /// The same upstream for a request answered in one piece (not streamed). Such an answer's
    /// response head comes only once the model has finished, so the first-byte limit bounds
    /// the whole generation: it is at least [`WHOLE_ANSWER_LIMIT`], as OpenAI's own SDK waits
    /// for a request (`DEFAULT_TIMEOUT`, 600 s, in openai-python's `_constants.py`).
    pub fn for_whole_answer(&self) -> Self {
        let mut whole = self.clone();
        whole.timeouts.first_byte = whole.timeouts.first_byte.max(WHOLE_ANSWER_LIMIT);
        whole
    }

    /// The whole answer body, read with the limits and errors of [`Upstream::body`]. A body
    /// that arrives in one read (the usual case for a short answer) is not copied.
    pub fn body_bytes(
        &self,
        response: Response,
    ) -> impl Future<Output = Result<Bytes>> + Send + 'static {
        let chunks = self.body(response);
        async move {
            futures::pin_mut!(chunks);
            let mut first: Option<Bytes> = None;
            let mut rest: Option<Vec<u8>> = None;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                match (&mut first, &mut rest) {
                    (None, _) => first = Some(chunk),
                    (Some(head), None) => {
                        let mut joined = Vec::with_capacity(head.len() + chunk.len());
                        joined.extend_from_slice(head);
                        joined.extend_from_slice(&chunk);
                        rest = Some(joined);
                    }
                    (Some(_), Some(joined)) => joined.extend_from_slice(&chunk),
                }
            }
            Ok(match rest {
                Some(joined) => Bytes::from(joined),
                None => first.unwrap_or_default(),
            })
        }
    }

    /// The answer body as Server-Sent Events ([`sse::events`](super::sse::events)).
    pub fn sse(&self, response: Response) -> BoxStream<'static, Result<SseEvent>> {
        super::sse::events(self.body(response))
    }

    /// The answer body as newline-delimited JSON lines ([`ndjson::lines`](super::ndjson::lines)).
    pub fn ndjson(&self, response: Response) -> BoxStream<'static, Result<String>> {
        super::ndjson::lines(self.body(response))
    }

    /// Maps an error status and body to an [`Error`] that says what to do.
    pub fn status_error(&self, status: StatusCode, detail: &ErrorDetail, body: &str) -> Error {
        let provider = self.provider;
        let code = status.as_u16();
        let said = detail
            .message
            .clone()
            .unwrap_or_else(|| body.chars().take(300).collect::<String>());
        let said = self.redact(said.trim());
        let kind = detail.code.unwrap_or(match code {
            401 | 403 => ErrorCode::Auth,
            404 => ErrorCode::NotFound,
            408 | 504 => ErrorCode::Timeout,
            429 => ErrorCode::RateLimit,
            400 | 409 | 413 | 415 | 422 => ErrorCode::BadRequest,
            _ => ErrorCode::Provider,
        });
        let next = detail.advice.clone().unwrap_or_else(|| match kind {
            ErrorCode::Auth => match &self.key_env {
                Some(var) => format!("check the key: set {var} or pass --key"),
                None => "check the credential".to_owned(),
            },
            ErrorCode::NotFound => "check the model name and the base URL".to_owned(),
            ErrorCode::RateLimit => {
                "the retries ran out; wait and try again, or check the account's limits".to_owned()
            }
            ErrorCode::Timeout => "try again later".to_owned(),
            ErrorCode::BadRequest => "the request was refused; check the options sent".to_owned(),
            _ => "the provider failed; try again later".to_owned(),
        });
        Error::new(
            kind,
            format!("{provider} answered HTTP {code}: {said} ({next})"),
        )
    }

    fn transport_error(&self, e: &reqwest::Error) -> Error {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        let detail = self.redact(&detail);
        if e.is_timeout() {
            return Error::new(
                ErrorCode::Timeout,
                format!(
                    "{} could not be reached in time ({detail}); check the network or proxy",
                    self.provider
                ),
            );
        }
        Error::network(format!(
            "cannot reach {} ({detail}); check the base URL, the network and the proxy",
            self.provider
        ))
    }

    fn redact(&self, text: &str) -> String {
        match &self.credential {
            Some(c) => c.redact(text),
            None => text.to_owned(),
        }
    }
}

/// The headers of every request to `target`: the credential, as `key` puts it (name and
/// value; marked sensitive so it never shows in debug output), the provider's `fixed` headers,
/// then the extra headers of the provider's config section, which win.
pub fn request_headers(
    target: &Target,
    key: impl FnOnce(&str) -> (HeaderName, String),
    fixed: &[(&'static str, &'static str)],
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(secret) = target.credential.as_ref().map(Credential::cookie_header)
        && !secret.is_empty()
    {
        let (name, value) = key(&secret);
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
    }
    for (name, value) in fixed {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    for (name, value) in &target.settings.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    headers
}

/// A provider's request URL, parsed once when its session opens rather than on every send:
/// `client.post(&str)` parses the URL (and checks the host through IDNA) each time, about
/// 20,000 instructions per request in a callgrind profile, a tenth of a whole answer's cost.
/// A URL that does not parse is kept as text, so its send fails as before, with reqwest's
/// message.
///
/// ```
/// use oy3o::transport::http::RequestUrl;
/// let url = RequestUrl::new("http://127.0.0.1:8080/v1/chat/completions".into());
/// assert_eq!(url.as_str(), "http://127.0.0.1:8080/v1/chat/completions");
/// ```
#[derive(Clone, Debug)]
pub struct RequestUrl(Parsed);

#[derive(Clone, Debug)]
enum Parsed {
    Url(reqwest::Url),
    Text(String),
}

impl RequestUrl {
    /// Parses `url` now; a bad one fails when sent. Each thread remembers the last few URLs
    /// it parsed: a server or a chain opens a session per request on the same few URLs, and a
    /// lookup costs a tenth of a parse.
    pub fn new(url: String) -> Self {
        const REMEMBERED: usize = 16;
        thread_local! {
            static PARSED: std::cell::RefCell<Vec<reqwest::Url>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let known = PARSED.with(|parsed| {
            parsed
                .borrow()
                .iter()
                .find(|known| known.as_str() == url)
                .cloned()
        });
        if let Some(parsed) = known {
            return Self(Parsed::Url(parsed));
        }
        match reqwest::Url::parse(&url) {
            // Only a URL that reads back as given can be recognised by its text next time.
            Ok(parsed) if parsed.as_str() == url => {
                PARSED.with(|cache| {
                    let mut cache = cache.borrow_mut();
                    if cache.len() == REMEMBERED {
                        cache.remove(0);
                    }
                    cache.push(parsed.clone());
                });
                Self(Parsed::Url(parsed))
            }
            Ok(parsed) => Self(Parsed::Url(parsed)),
            Err(_) => Self(Parsed::Text(url)),
        }
    }

    /// A `POST` to this URL.
    pub fn post(&self, client: &reqwest::Client) -> RequestBuilder {
        match &self.0 {
            Parsed::Url(url) => client.post(url.clone()),
            Parsed::Text(text) => client.post(text),
        }
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Parsed::Url(url) => url.as_str(),
            Parsed::Text(text) => text,
        }
    }
}

/// The URL of an API route: `base` + `version` + `path`, without doubling the version when the
/// base already ends with it, so both forms of a base URL work.
///
/// ```
/// use oy3o::transport::http::endpoint;
/// let want = "https://api.anthropic.com/v1/messages";
/// assert_eq!(endpoint("https://api.anthropic.com", "/v1", "/messages"), want);
/// assert_eq!(endpoint("https://api.anthropic.com/v1/", "/v1", "/messages"), want);
/// ```
pub fn endpoint(base: &str, version: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(version) {
        format!("{base}{path}")
    } else {
        format!("{base}{version}{path}")
    }
}

async fn read_body(response: Response, limit: Duration) -> String {
    match tokio::time::timeout(limit, response.bytes()).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b[..b.len().min(64 * 1024)]).into_owned(),
        _ => String::new(),
    }
}
