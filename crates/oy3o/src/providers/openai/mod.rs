//! `openai:` — the OpenAI Chat Completions API and every server that speaks it (vLLM,
//! llama.cpp, LM Studio, Groq, DeepSeek, OpenRouter, Ollama's `/v1`), or with
//! `api = "responses"` in its config section, the Responses API. Wire format:
//! `shared/wire/PROVIDERS.md` §1 (Chat Completions), §1.9 (reasoning deltas), §2 (Responses),
//! §5.5 (Ollama), §6 (llama.cpp). Chat Completions asks for a whole answer (`"stream": false`)
//! when the caller wants one ([`crate::config::Options::whole`]); the Responses API always
//! streams.

mod request;
mod responses;
mod stream;
mod whole;

use bytes::Bytes;

use crate::attachment::{Capabilities, Urls};
use crate::config::Target;
use crate::error::{Error, Result};
use crate::provider::{
    CompletionRequest, Completions, DeltaStream, HistorySession, KeyPolicy, Provider, ProviderInfo,
    Session,
};
use crate::transport::http::{RequestUrl, Upstream};
use crate::transport::sse;

/// The OpenAI-compatible provider.
pub struct OpenAi;

static INFO: ProviderInfo = ProviderInfo {
    name: "openai",
    default_model: "gpt-4o-mini",
    default_base_url: Some("https://api.openai.com/v1"),
    base_url_env: &["OPENAI_BASE_URL"],
    key_env: &["OPENAI_API_KEY"],
    key_policy: KeyPolicy::UnlessCustomBaseUrl,
    events: &["reasoning", "search", "citation", "usage", "retry"],
};

impl Provider for OpenAi {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }

    fn open(&self, target: &Target) -> Result<Box<dyn Session>> {
        let context = target.context.clone();
        match target.settings.api.as_deref() {
            None | Some("chat") => Ok(Box::new(HistorySession::new(
                ChatCompletions::new(target)?,
                context,
            ))),
            Some("responses") => Ok(Box::new(HistorySession::new(
                responses::Responses::new(target)?,
                context,
            ))),
            Some(other) => Err(Error::config(format!(
                "unknown api {other:?} in the openai provider's settings: use \"chat\" (Chat \
                 Completions) or \"responses\" (the Responses API)"
            ))),
        }
    }

    /// Chat Completions (TOOLS.md §1) and the Responses API (§2) both take tools; an unknown
    /// `api` opens no session at all.
    fn takes_tools(&self, target: &Target) -> bool {
        matches!(
            target.settings.api.as_deref(),
            None | Some("chat") | Some("responses")
        )
    }

    fn capabilities(&self, target: &Target) -> Capabilities {
        capabilities(target, self.takes_tools(target))
    }

    /// Chat Completions: `reasoning_effort`, `response_format`, `web_search_options` (the
    /// search models; others refuse it upstream), `stop` (TOOLS.md §1.5, PROVIDERS.md §1.2).
    /// Responses: `reasoning.effort`, `text.format`, the `web_search` tool; it has no stop
    /// sequences (TOOLS.md §2.5, §2.6, PROVIDERS.md §2.1).
    fn controls(&self, target: &Target) -> crate::controls::Controls {
        let responses = target.settings.api.as_deref() == Some("responses");
        crate::controls::Controls {
            stop: !responses,
            ..crate::controls::Controls::ALL
        }
    }
}

/// OpenAI's own models that read text only (by name prefix); the others take images and
/// PDFs (TOOLS.md §1.4: PDFs "only on models that take both text and images").
const TEXT_ONLY: &[&str] = &[
    "gpt-3.5",
    "gpt-4-0",
    "gpt-4-32k",
    "o1-mini",
    "o3-mini",
    "davinci",
    "babbage",
];

/// The sounds Chat Completions' `input_audio` takes: `wav` and `mp3` (TOOLS.md §1.4).
const WAV_MP3: &[&str] = &["audio/wav", "audio/mpeg"];

/// The name prefixes of OpenAI's own models (after a router's `openai/`).
const OPENAI_MODELS: &[&str] = &["gpt-", "chatgpt-", "o1", "o3", "o4", "davinci", "babbage"];

/// What a target can take (TOOLS.md §1.4, §2.4). OpenAI's own models (known by name, on any
/// base URL, routers included): images and PDFs unless the model reads text only, audio only
/// on the `*audio*` models (Chat Completions only: Responses has no `input_audio`), image URLs
/// (and PDF URLs on Responses, `file_url`). Other models on compatible servers (llama.cpp,
/// vLLM...), which cannot be known from here: images and sounds as bytes, which a server
/// without them refuses itself; no PDFs (the `file` part is OpenAI's own).
fn capabilities(target: &Target, tools: bool) -> Capabilities {
    let responses = target.settings.api.as_deref() == Some("responses");
    let audio = if responses { &[][..] } else { WAV_MP3 };
    let text = Capabilities {
        tools,
        text_documents: true,
        ..Capabilities::TEXT
    };
    let lower = target.model.to_ascii_lowercase();
    let model = lower.strip_prefix("openai/").unwrap_or(&lower);
    if !OPENAI_MODELS.iter().any(|p| model.starts_with(p)) {
        return Capabilities {
            images: true,
            audio,
            ..text
        };
    }
    if model.contains("audio") {
        return Capabilities { audio, ..text };
    }
    if model == "gpt-4" || TEXT_ONLY.iter().any(|p| model.starts_with(p)) {
        return text;
    }
    Capabilities {
        images: true,
        image_urls: Urls::Any,
        pdfs: true,
        file_urls: if responses { Urls::Any } else { Urls::None },
        ..text
    }
}

/// The base URL of a target: configured, from the environment, or OpenAI's own.
fn base_url(target: &Target) -> String {
    target
        .base_url
        .clone()
        .unwrap_or_else(|| INFO.default_base_url.unwrap_or_default().to_owned())
}

/// One configured Chat Completions endpoint.
struct ChatCompletions {
    upstream: Upstream,
    url: RequestUrl,
    request: request::RequestShape,
}

impl ChatCompletions {
    fn new(target: &Target) -> Result<Self> {
        let base = base_url(target);
        Ok(Self {
            upstream: Upstream::for_target(INFO.name, target, request::read_error)?,
            url: RequestUrl::new(format!("{}/chat/completions", base.trim_end_matches('/'))),
            request: request::RequestShape::new(target, &base),
        })
    }
}

impl Completions for ChatCompletions {
    fn complete(&self, request: CompletionRequest) -> DeltaStream {
        let body = match self.request.body(&request) {
            Ok(body) => body,
            Err(e) => {
                let e = Error::provider(format!("cannot write the openai request: {e}"));
                return Box::pin(futures::stream::once(async move { Err(e) }));
            }
        };
        let url = self.url.clone();
        let headers = self.request.headers.clone();
        let whole = request.options.whole;
        let whole_upstream;
        let opener = if whole {
            whole_upstream = self.upstream.for_whole_answer();
            &whole_upstream
        } else {
            &self.upstream
        };
        let upstream = opener.clone();
        opener.answer(
            move |client| url.post(client).headers(headers.clone()).body(body.clone()),
            move |response| {
                // A server (or a proxy before it) that streams anyway is read as a stream.
                if whole && !is_event_stream(&response) {
                    whole::deltas(upstream.body_bytes(response))
                } else {
                    stream::deltas(upstream.sse(response))
                }
            },
        )
    }
}

fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// Decodes and maps a Chat Completions answer held in memory, read by read, as the provider
/// does with one from the network. For benchmarks; not a stable API.
#[doc(hidden)]
pub fn replay(body: Vec<Bytes>) -> DeltaStream {
    stream::deltas(sse::events(futures::stream::iter(body.into_iter().map(Ok))))
}

/// Maps a whole (non-streamed) Chat Completions answer held in memory, as the provider does
/// with one from the network. For benchmarks; not a stable API.
#[doc(hidden)]
pub fn replay_whole(body: Bytes) -> DeltaStream {
    whole::deltas(async move { Ok(body) })
}

/// Like [`replay`], for a Responses API answer. For benchmarks; not a stable API.
#[doc(hidden)]
pub fn replay_responses(body: Vec<Bytes>) -> DeltaStream {
    responses::deltas(sse::events(futures::stream::iter(body.into_iter().map(Ok))))
}
