//! `gemini:` — the Google Gemini API, streamed with `alt=sse` (`shared/wire/PROVIDERS.md` §4):
//! the context as `systemInstruction`, roles `user`/`model`, CRLF framing, no end marker (the
//! end is EOF after a `finishReason`), thought parts as `reasoning`, grounding metadata as
//! `search`/`citation` events, cumulative usage (one `usage` at the end).

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

/// The Gemini provider.
pub struct Gemini;

static INFO: ProviderInfo = ProviderInfo {
    name: "gemini",
    default_model: "gemini-2.5-flash",
    default_base_url: Some("https://generativelanguage.googleapis.com"),
    base_url_env: &["GEMINI_BASE_URL"],
    key_env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
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

impl Provider for Gemini {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }

    fn open(&self, target: &Target) -> Result<Box<dyn Session>> {
        Ok(Box::new(HistorySession::new(
            GenerateContent::new(target)?,
            target.context.clone(),
        )))
    }

    /// Function declarations out, `functionCall` parts in (TOOLS.md §4).
    fn takes_tools(&self, _target: &Target) -> bool {
        true
    }

    /// Images, PDFs and sounds as inline bytes; URLs only from Gemini's own File API, as
    /// `fileData` (TOOLS.md §4.4): other URLs are fetched and sent inline.
    fn capabilities(&self, _target: &Target) -> Capabilities {
        Capabilities {
            tools: true,
            images: true,
            image_urls: Urls::Under(FILE_API),
            pdfs: true,
            text_documents: true,
            file_urls: Urls::Under(FILE_API),
            audio: AUDIO,
        }
    }

    /// `thinkingConfig`, `responseJsonSchema`, the `google_search` tool, `stopSequences`
    /// (TOOLS.md §4.5, §4.6; PROVIDERS.md §4.1).
    fn controls(&self, _target: &Target) -> crate::controls::Controls {
        crate::controls::Controls::ALL
    }
}

/// Where the Gemini File API's file URIs live (TOOLS.md §4.4).
const FILE_API: &str = "https://generativelanguage.googleapis.com/";

/// The sounds the Gemini API takes inline.
const AUDIO: &[&str] = &[
    "audio/wav",
    "audio/mpeg",
    "audio/aiff",
    "audio/aac",
    "audio/ogg",
    "audio/flac",
];

/// One configured `streamGenerateContent` endpoint.
struct GenerateContent {
    upstream: Upstream,
    url: RequestUrl,
    request: request::RequestShape,
    /// The provider's `extra_body` setting, merged into every body.
    extra_body: Option<serde_json::Map<String, serde_json::Value>>,
}

impl GenerateContent {
    fn new(target: &Target) -> Result<Self> {
        let base = target
            .base_url
            .as_deref()
            .or(INFO.default_base_url)
            .unwrap_or_default();
        let model = target.model.trim_start_matches("models/");
        Ok(Self {
            upstream: Upstream::for_target(INFO.name, target, request::read_error)?,
            url: RequestUrl::new(endpoint(
                base,
                "/v1beta",
                &format!("/models/{model}:streamGenerateContent?alt=sse"),
            )),
            request: request::RequestShape::new(target),
            extra_body: target.settings.extra_body.clone(),
        })
    }
}

impl Completions for GenerateContent {
    fn complete(&self, request: CompletionRequest) -> DeltaStream {
        let url = self.url.clone();
        let mut body = request::body(&request);
        crate::controls::merge_extra_body(&mut body, self.extra_body.as_ref(), &request.options);
        let headers = self.request.headers.clone();
        let upstream = self.upstream.clone();
        self.upstream.answer(
            move |client| url.post(client).headers(headers.clone()).json(&body),
            move |response| stream::deltas(upstream.sse(response)),
        )
    }
}

/// Decodes and maps a Gemini answer held in memory, read by read, as the provider does with
/// one from the network. For benchmarks; not a stable API.
#[doc(hidden)]
pub fn replay(body: Vec<Bytes>) -> DeltaStream {
    stream::deltas(sse::events(futures::stream::iter(body.into_iter().map(Ok))))
}
