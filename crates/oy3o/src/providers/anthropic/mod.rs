//! `anthropic:` — the Anthropic Messages API, streamed (`shared/wire/PROVIDERS.md` §3): the
//! context as the top-level `system`, `max_tokens` always sent, thinking as `reasoning`, web
//! search queries, results and citations as events, one `usage` at the end.

mod request;
mod stream;

use bytes::Bytes;

use crate::attachment::{Capabilities, Urls};
use crate::config::Target;
use crate::error::Result;
use crate::provider::{
    CompletionRequest, Completions, DeltaStream, HistorySession, KeyPolicy, Provider, ProviderInfo,
    Session,
};
use crate::transport::http::{RequestUrl, Upstream, endpoint};
use crate::transport::sse;

/// The Anthropic provider.
pub struct Anthropic;

static INFO: ProviderInfo = ProviderInfo {
    name: "anthropic",
    default_model: "claude-sonnet-4-5",
    default_base_url: Some("https://api.anthropic.com"),
    base_url_env: &["ANTHROPIC_BASE_URL"],
    key_env: &["ANTHROPIC_API_KEY"],
    key_policy: KeyPolicy::Required,
    events: &[
        "reasoning",
        "search",
        "search_result",
        "citation",
        "usage",
        "retry",
    ],
};

impl Provider for Anthropic {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }

    fn open(&self, target: &Target) -> Result<Box<dyn Session>> {
        Ok(Box::new(HistorySession::new(
            Messages::new(target)?,
            target.context.clone(),
        )))
    }

    /// Client tools: `tool_use` blocks out, `tool_result` blocks back (TOOLS.md §3).
    fn takes_tools(&self, _target: &Target) -> bool {
        true
    }

    /// Images and PDFs, as bytes or URLs (TOOLS.md §3.4); no audio. The Claude 2 and instant
    /// models read text only.
    fn capabilities(&self, target: &Target) -> Capabilities {
        let model = target.model.to_ascii_lowercase();
        if model.starts_with("claude-2") || model.starts_with("claude-instant") {
            return Capabilities {
                tools: true,
                text_documents: true,
                ..Capabilities::TEXT
            };
        }
        Capabilities {
            tools: true,
            images: true,
            image_urls: Urls::Any,
            pdfs: true,
            text_documents: true,
            file_urls: Urls::Any,
            audio: &[],
        }
    }

    /// `thinking`, `output_config.format`, the `web_search_20250305` server tool,
    /// `stop_sequences` (TOOLS.md §3.5–§3.7, PROVIDERS.md §3.1).
    fn controls(&self, _target: &Target) -> crate::controls::Controls {
        crate::controls::Controls::ALL
    }
}

/// One configured Messages endpoint.
struct Messages {
    upstream: Upstream,
    url: RequestUrl,
    request: request::RequestShape,
}

impl Messages {
    fn new(target: &Target) -> Result<Self> {
        let base = target
            .base_url
            .as_deref()
            .or(INFO.default_base_url)
            .unwrap_or_default();
        Ok(Self {
            upstream: Upstream::for_target(INFO.name, target, request::read_error)?,
            url: RequestUrl::new(endpoint(base, "/v1", "/messages")),
            request: request::RequestShape::new(target),
        })
    }
}

impl Completions for Messages {
    fn complete(&self, request: CompletionRequest) -> DeltaStream {
        let url = self.url.clone();
        let body = match self.request.body(&request) {
            Ok(body) => body,
            Err(e) => return Box::pin(futures::stream::once(async move { Err(e) })),
        };
        let headers = self.request.headers.clone();
        let upstream = self.upstream.clone();
        self.upstream.answer(
            move |client| url.post(client).headers(headers.clone()).json(&body),
            move |response| stream::deltas(upstream.sse(response)),
        )
    }
}

/// Decodes and maps a Messages answer held in memory, read by read, as the provider does with
/// one from the network. For benchmarks; not a stable API.
#[doc(hidden)]
pub fn replay(body: Vec<Bytes>) -> DeltaStream {
    stream::deltas(sse::events(futures::stream::iter(body.into_iter().map(Ok))))
}
