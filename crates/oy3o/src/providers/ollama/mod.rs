//! `ollama:` — Ollama's native chat API (`POST /api/chat`, NDJSON; `shared/wire/PROVIDERS.md`
//! §5.1–§5.4): options as `options.temperature` / `num_predict`, `message.thinking` as
//! `reasoning`, the eval counts as `usage`, and the `done: true` line as the end. A key is
//! sent only when one is configured (ollama.com); `OLLAMA_HOST` may omit the scheme.

mod request;
mod stream;

use bytes::Bytes;

use crate::attachment::Capabilities;
use crate::config::Target;
use crate::error::Result;
use crate::provider::{
    CompletionRequest, Completions, DeltaStream, HistorySession, KeyPolicy, Provider, ProviderInfo,
    Session,
};
use crate::transport::http::{RequestUrl, Upstream, endpoint};
use crate::transport::ndjson;

/// The Ollama provider.
pub struct Ollama;

static INFO: ProviderInfo = ProviderInfo {
    name: "ollama",
    default_model: "llama3.2",
    default_base_url: Some("http://localhost:11434"),
    base_url_env: &["OLLAMA_HOST"],
    key_env: &["OLLAMA_API_KEY"],
    key_policy: KeyPolicy::Optional,
    events: &["reasoning", "usage", "retry"],
};

impl Provider for Ollama {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }

    fn open(&self, target: &Target) -> Result<Box<dyn Session>> {
        Ok(Box::new(HistorySession::new(
            Chat::new(target)?,
            target.context.clone(),
        )))
    }

    /// Tools go out with the request; calls come back whole (TOOLS.md §5).
    fn takes_tools(&self, _target: &Target) -> bool {
        true
    }

    /// Images as base64 for vision models (TOOLS.md §5.4), known by name; no PDFs, no audio,
    /// no URLs: an image URL is fetched by the engine and sent as bytes.
    /// `think`, `format`, `options.stop` (PROVIDERS.md §5.1, TOOLS.md §5.5); Ollama's chat
    /// has no search tool.
    fn controls(&self, _target: &Target) -> crate::controls::Controls {
        crate::controls::Controls {
            search: false,
            ..crate::controls::Controls::ALL
        }
    }

    fn capabilities(&self, target: &Target) -> Capabilities {
        Capabilities {
            tools: true,
            images: sees(&target.model),
            text_documents: true,
            ..Capabilities::TEXT
        }
    }
}

/// The Ollama model families that read images (the library's "vision" models).
const VISION: &[&str] = &[
    "llava",
    "bakllava",
    "llama3.2-vision",
    "llama4",
    "gemma3",
    "qwen2.5vl",
    "qwen2.5-vl",
    "qwen3-vl",
    "minicpm-v",
    "moondream",
    "granite3.2-vision",
    "mistral-small3.1",
    "mistral-small3.2",
];

/// Whether an Ollama model reads images: one of the [`VISION`] families (`llava:13b`,
/// `library/gemma3`), except the text-only small Gemma 3 sizes.
fn sees(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    let name = model.rsplit('/').next().unwrap_or_default();
    let (family, size) = name.split_once(':').unwrap_or((name, ""));
    if family == "gemma3" && matches!(size, "1b" | "270m") {
        return false;
    }
    VISION
        .iter()
        .any(|v| family == *v || family.starts_with(&format!("{v}-")))
}

/// One configured `/api/chat` endpoint.
struct Chat {
    upstream: Upstream,
    url: RequestUrl,
    request: request::RequestShape,
}

impl Chat {
    fn new(target: &Target) -> Result<Self> {
        let base = host_url(
            target
                .base_url
                .as_deref()
                .or(INFO.default_base_url)
                .unwrap_or_default(),
        );
        Ok(Self {
            upstream: Upstream::for_target(INFO.name, target, request::read_error)?,
            url: RequestUrl::new(endpoint(&base, "/api", "/chat")),
            request: request::RequestShape::new(target),
        })
    }
}

impl Completions for Chat {
    fn complete(&self, request: CompletionRequest) -> DeltaStream {
        let url = self.url.clone();
        let body = self.request.body(&request);
        let headers = self.request.headers.clone();
        let upstream = self.upstream.clone();
        self.upstream.answer(
            move |client| url.post(client).headers(headers.clone()).json(&body),
            move |response| stream::deltas(upstream.ndjson(response)),
        )
    }
}

/// A base URL from an `OLLAMA_HOST`-style value, as the Ollama client reads it: without a
/// scheme it is `http://`, and without a port it is 11434 (`0.0.0.0`, `:11434` and
/// `example.com` all work).
fn host_url(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        return host.to_owned();
    }
    let (hostport, path) = match host.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (host, String::new()),
    };
    // `[::1]:11434`, `host:11434`, `:11434`: a port is what follows the last colon outside
    // brackets.
    let has_port = hostport.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')
    });
    let hostport = match (hostport, has_port) {
        ("", _) => "127.0.0.1:11434".to_owned(),
        (h, true) if h.starts_with(':') => format!("127.0.0.1{h}"),
        (h, true) => h.to_owned(),
        (h, false) => format!("{h}:11434"),
    };
    format!("http://{hostport}{path}")
}

/// Decodes and maps an `/api/chat` answer held in memory, read by read, as the provider does
/// with one from the network. For benchmarks; not a stable API.
#[doc(hidden)]
pub fn replay(body: Vec<Bytes>) -> DeltaStream {
    stream::deltas(ndjson::lines(futures::stream::iter(
        body.into_iter().map(Ok),
    )))
}

#[cfg(test)]
mod tests {
    use super::host_url;

    #[test]
    fn ollama_host_values_without_scheme_or_port_become_urls() {
        for (given, want) in [
            ("127.0.0.1:11434", "http://127.0.0.1:11434"),
            ("0.0.0.0", "http://0.0.0.0:11434"),
            (":8080", "http://127.0.0.1:8080"),
            ("example.com", "http://example.com:11434"),
            ("[::1]:11434", "http://[::1]:11434"),
            ("http://box:11434/", "http://box:11434"),
            ("https://ollama.com", "https://ollama.com"),
        ] {
            assert_eq!(host_url(given), want, "{given}");
        }
    }
}
