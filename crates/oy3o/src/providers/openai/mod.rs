//! `openai:` — the OpenAI Chat Completions API and every server that speaks it (vLLM,
//! llama.cpp, LM Studio, Groq, DeepSeek, OpenRouter, Ollama's `/v1`). Wire format:
//! `shared/wire/PROVIDERS.md` §1 (OpenAI), §1.9 (reasoning deltas), §5.5 (Ollama), §6 (llama.cpp).

mod request;
mod stream;

use futures::StreamExt;

use crate::config::Target;
use crate::error::Result;
use crate::provider::{
    CompletionRequest, Completions, DeltaStream, HistorySession, KeyPolicy, Provider, ProviderInfo,
    Session,
};
use crate::transport::client;
use crate::transport::http::{Opened, Upstream};
use crate::transport::retry::RetryPolicy;

/// The OpenAI-compatible provider.
pub struct OpenAi;

static INFO: ProviderInfo = ProviderInfo {
    name: "openai",
    default_model: "gpt-4o-mini",
    default_base_url: Some("https://api.openai.com/v1"),
    base_url_env: &["OPENAI_BASE_URL"],
    key_env: &["OPENAI_API_KEY"],
    key_policy: KeyPolicy::UnlessCustomBaseUrl,
    events: &["reasoning", "citation", "usage", "retry"],
};

impl Provider for OpenAi {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }

    fn open(&self, target: &Target) -> Result<Box<dyn Session>> {
        let endpoint = ChatCompletions::new(target)?;
        Ok(Box::new(HistorySession::new(
            endpoint,
            target.context.clone(),
        )))
    }
}

/// One configured Chat Completions endpoint.
struct ChatCompletions {
    upstream: Upstream,
    url: String,
    request: request::RequestShape,
}

impl ChatCompletions {
    fn new(target: &Target) -> Result<Self> {
        let base = target
            .base_url
            .clone()
            .unwrap_or_else(|| INFO.default_base_url.unwrap_or_default().to_owned());
        let timeouts = target.settings.timeouts();
        let upstream = Upstream {
            provider: INFO.name,
            client: client::shared(target.proxy.as_deref(), timeouts.connect)?,
            timeouts,
            retry: RetryPolicy {
                max_retries: target.settings.max_retries.unwrap_or(2),
                ..RetryPolicy::default()
            },
            key_env: target.key_env.clone(),
            credential: target.credential.clone(),
            read_error: request::read_error,
        };
        Ok(Self {
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            request: request::RequestShape::new(target, &base),
            upstream,
        })
    }
}

impl Completions for ChatCompletions {
    fn complete(&self, request: CompletionRequest) -> DeltaStream {
        let upstream = self.upstream.clone();
        let url = self.url.clone();
        let body = self.request.body(&request);
        let headers = self.request.headers.clone();
        Box::pin(async_stream::try_stream! {
            let mut opening = upstream.open(move |client| {
                client.post(&url).headers(headers.clone()).json(&body)
            });
            let mut response = None;
            while let Some(step) = opening.next().await {
                match step? {
                    Opened::Retry(event) => yield crate::provider::Delta::Event(event),
                    Opened::Response(r) => response = Some(r),
                }
            }
            if let Some(response) = response {
                let mut deltas = stream::deltas(upstream.sse(response));
                while let Some(delta) = deltas.next().await {
                    yield delta?;
                }
            }
        })
    }
}
